// The packet path's own state, laid out over one ArrayBuffer/SharedArrayBuffer: a header with
// the capacities, hash seed and timeouts; the counters; the flow table with its nat reverse
// index; the neighbour (ARP) table. `createState` sizes and zeroes it from options;
// `attachState` maps views over memory that already holds it (a new worker taking over).

import { Carver, Memory, allocMemory, nextPow2 } from '../tables/memory';
import { COUNTER_SLOTS } from './counters';
import { RecordRing, RING_RECORDS, RING_CTL_WORDS } from '../shm/ring';
import { FLOW_WIRE_BYTES } from '../shm/flow-record';

const MAGIC = 0x56475431; // "VGT1"
// 4: the counters region grew by the ICMP drop reasons and counters, moving everything after
// it; the echo bucket took times[5..6] (unused before).
// 5: the counters region grew by frame_too_large and the live I/O counters (issue 10).
// 6: the packet clock left the shared memory (times[4] is unused: each process has its own
// PacketClock); the counters region grew by state_records_dropped/_repaired (issue 9).
// 7: the two replication rings of issue 11 (journal, imports: 2 x 1.5 MiB after the neighbours),
// a per-flow refresh stamp (fRefresh) and the counters region grew by the cluster drop reasons
// and repl_* counters.
const LAYOUT_VERSION = 7;

/** Backend slots with per-backend stats (Tables never hand out more: see MAX_BACKENDS there). */
export const MAX_BACKEND_SLOTS = 4096;

export interface StateOptions {
  flowCapacity: number;
  neighbourCapacity: number;
  halfOpenTimeoutMs: number;
  establishedTimeoutMs: number;
  closingTimeoutMs: number;
  neighbourTtlMs: number;
  /** Hash seed; a parameter so replays and tests are repeatable. */
  seed: number;
  shared?: boolean;
  /** Where the (non-shared) memory comes from, zeroed: e.g. huge pages (native-bindings/afpacket.ts). Default: an ArrayBuffer. */
  alloc?: (bytes: number) => ArrayBuffer;
}

// Flow record layout (slot s), 64 bytes = one cache line:
//   bytes  0      state (FS_* in flows.ts)     byte 1  verified (1: counted in bVerified)
//   bytes  2..7   the MAC the client's frames came from
//   words  2 cli  3 vip  4 ports (client port << 16 | VIP port)  5 backend IPv4  6 backend slot
//          7 nat reverse-index slot + 1 (0 = none)
//   doubles 4 last packet time (ms)  5 created  6 packets client->backend  7 packets backend->client
// Views: bytes fb[(s << 6) + B_*], i32 fw[(s << 4) + F_*], f64 fd[(s << 3) + D_*]. IPv4
// addresses are signed 32-bit (10.0.0.1 = 0x0a000001, 192.168.0.1 = 0xc0a80001 | 0 < 0).
export const FLOW_RECORD_BYTES = 64;
export const B_STATE = 0;
/** 1 when the flow's SYN was sent to a verified backend (it counts in bVerified until it ends). */
export const B_VERIFIED = 1;
export const B_CLIMAC = 2;
export const F_CLI = 2;
export const F_VIP = 3;
export const F_PORTS = 4;
export const F_BACKIP = 5;
export const F_BACKEND = 6;
export const F_RSLOT = 7;
export const D_LAST = 4;
export const D_CREATED = 5;
export const D_PKTS_IN = 6;
export const D_PKTS_OUT = 7;

// Header words (Uint32Array)
const H_MAGIC = 0, H_VERSION = 1, H_FLOW_CAP = 2, H_FLOW_SLOTS = 3, H_NEIGH_CAP = 4, H_NEIGH_SLOTS = 5, H_SEED = 6;
export const H_SWEEP_CURSOR = 7;
// Header times (Float64Array)
export const T_HALF_OPEN = 0, T_ESTABLISHED = 1, T_CLOSING = 2, T_NEIGH_TTL = 3;
// times[4] held the packet clock until layout 6; unused since (see PacketClock).
/** The echo-reply token bucket (dataplane/icmp.ts): tokens left, and the packet-clock time (ms)
 *  it was last refilled at; -Infinity until the first echo, so the bucket starts full. */
export const T_ECHO_TOKENS = 5, T_ECHO_LAST = 6;

/**
 * The packet path's clock (ms) in clock[NOW]: one per process, never in the shared memory (issue 9:
 * a supervisor and a worker, or an old and a new worker, would each move a shared clock under the
 * other). Kept in a Float64Array rather than passed along: a double argument to a call V8 does not
 * inline is boxed into a new heap number, which per packet means garbage and GC. The link sets it
 * once per batch; the flow table, neighbour table and ICMP path of one Dataplane read the same one.
 */
export type PacketClock = Float64Array;
export const NOW = 0;
export function newClock(now = 0): PacketClock {
  const c = new Float64Array(1);
  c[NOW] = now;
  return c;
}

export interface StateViews {
  memory: Memory;
  header: Uint32Array;
  times: Float64Array;
  counters: Float64Array;
  /** Per backend slot: live flows now (a gauge kept by the flow table). */
  bFlows: Float64Array;
  /** Per backend slot: flows created (a counter; control zeroes a slot when it is reused). */
  bConns: Float64Array;
  /**
   * Per backend slot: time (ms, control's clock) the backend last answered a health check or a
   * SYN-time probe; 0 = never. Written by control only; the packet path reads it (SYN-time check).
   */
  bHealthOkAt: Float64Array;
  /**
   * Per backend slot: live flows whose backend answered (their SYN passed the SYN-time check, or
   * was sent while the backend was verified): while > 0, new SYNs to it skip the probe
   * (JP2002-207647). Written by the packet path only (flow creation and expiry).
   */
  bVerified: Float64Array;
  flowCapacity: number;
  flowSlots: number;
  neighbourCapacity: number;
  neighbourSlots: number;
  seed: number;
  // flows: one 64-byte record per slot (one cache line: a lookup touches one line, not one per
  // field), seen through three views of the same memory; see the F_* offsets below.
  fw: Int32Array;        // 16 words per slot (addresses and port pairs signed: see s32 in wire/bytes.ts)
  fd: Float64Array;      // 8 doubles per slot
  fb: Uint8Array;        // 64 bytes per slot
  rRef: Int32Array;      // nat reverse index: forward slot + 1, 0 = never used
  // neighbours
  nIp: Int32Array;       // signed, like every address on the packet path
  nMac: Uint8Array;      // 8 bytes per slot
  nSeen: Float64Array;   // last time the mapping was seen, ms
  nState: Uint8Array;    // 0 = never used, 1 = used (stale entries stay used until overwritten)
  /**
   * Per flow slot: when the sweep last sent the flow to the peers (REFRESH; until then its
   * creation time, D_CREATED, stands for it: see FlowTable.sweep), as
   * ms since the epoch modulo 2^32 (differences in 32-bit arithmetic are right for 49 days): the
   * sweep refreshes a flow active since then at most once per established_timeout / 4 (issue 11).
   */
  fRefresh: Uint32Array;
  /** Issue 11: the flows' changes, written by the packet worker, read by the supervisor (cluster only). */
  journal: RecordRing;
  /** Issue 11: the peers' flow records, written by the supervisor, upserted by the packet worker. */
  imports: RecordRing;
}

function layout(c: Carver, flowSlots: number, neighSlots: number) {
  const header = c.u32(16), times = c.f64(8), counters = c.f64(COUNTER_SLOTS); // header first: attachState reads it at 0
  const bFlows = c.f64(MAX_BACKEND_SLOTS), bConns = c.f64(MAX_BACKEND_SLOTS);
  const bHealthOkAt = c.f64(MAX_BACKEND_SLOTS), bVerified = c.f64(MAX_BACKEND_SLOTS);
  const flowsAt = c.region(flowSlots * FLOW_RECORD_BYTES, 64);
  const m = c.buf;
  return {
    header, times, counters, bFlows, bConns, bHealthOkAt, bVerified,
    fw: m ? new Int32Array(m, flowsAt, flowSlots * 16) : new Int32Array(0),
    fd: m ? new Float64Array(m, flowsAt, flowSlots * 8) : new Float64Array(0),
    fb: m ? new Uint8Array(m, flowsAt, flowSlots * 64) : new Uint8Array(0),
    rRef: c.i32(flowSlots),
    nSeen: c.f64(neighSlots), nIp: c.i32(neighSlots), nMac: c.u8(neighSlots * 8), nState: c.u8(neighSlots),
    fRefresh: c.u32(flowSlots),
    journalCtl: c.i32(RING_CTL_WORDS), journalData: c.u8(RING_RECORDS * FLOW_WIRE_BYTES),
    importsCtl: c.i32(RING_CTL_WORDS), importsData: c.u8(RING_RECORDS * FLOW_WIRE_BYTES),
  };
}

function slotsFor(capacity: number): number {
  // Load factor at most 1/2 keeps linear-probe chains short (Knuth: ~1.5 probes for a hit).
  return nextPow2(Math.max(16, capacity * 2));
}

export function stateSize(o: Pick<StateOptions, 'flowCapacity' | 'neighbourCapacity'>): number {
  const c = new Carver(null);
  layout(c, slotsFor(o.flowCapacity), slotsFor(o.neighbourCapacity));
  return c.size;
}

export function createState(o: StateOptions): StateViews {
  const memory = o.alloc && !o.shared ? o.alloc(stateSize(o)) : allocMemory(stateSize(o), o.shared ?? false);
  return initState(memory, 0, o);
}

/**
 * Lay a new state out in zeroed memory at byte `offset` (64-aligned; stateSize(o) bytes from there),
 * e.g. inside a shared-memory region (src/shm/region.ts), and map views over it.
 */
export function initState(memory: Memory, offset: number, o: Omit<StateOptions, 'shared' | 'alloc'>): StateViews {
  const fs = slotsFor(o.flowCapacity), ns = slotsFor(o.neighbourCapacity);
  const v = layout(new Carver(memory, offset), fs, ns);
  v.header[H_MAGIC] = MAGIC;
  v.header[H_VERSION] = LAYOUT_VERSION;
  v.header[H_FLOW_CAP] = o.flowCapacity;
  v.header[H_FLOW_SLOTS] = fs;
  v.header[H_NEIGH_CAP] = o.neighbourCapacity;
  v.header[H_NEIGH_SLOTS] = ns;
  v.header[H_SEED] = o.seed >>> 0;
  setTimeouts(v.times, o);
  v.times[T_ECHO_LAST] = -Infinity;
  return attachState(memory, offset);
}

/** Write the timeouts (not part of the state's shape: a new supervisor rewrites them from its config). */
export function setTimeouts(times: Float64Array, o: Pick<StateOptions, 'halfOpenTimeoutMs' | 'establishedTimeoutMs' | 'closingTimeoutMs' | 'neighbourTtlMs'>): void {
  times[T_HALF_OPEN] = o.halfOpenTimeoutMs;
  times[T_ESTABLISHED] = o.establishedTimeoutMs;
  times[T_CLOSING] = o.closingTimeoutMs;
  times[T_NEIGH_TTL] = o.neighbourTtlMs;
}

/** The state layout version this build reads and writes (a region header records it). */
export const STATE_LAYOUT_VERSION = LAYOUT_VERSION;

/**
 * Map views over memory that already holds a state at byte `offset` (made by createState or
 * initState, possibly in another thread or process).
 */
export function attachState(memory: Memory, offset = 0): StateViews {
  const h = new Uint32Array(memory, offset, 16);
  if (h[H_MAGIC] !== MAGIC) throw new Error('state: memory does not hold vipgate state (bad magic)');
  if (h[H_VERSION] !== LAYOUT_VERSION) throw new Error(`state: layout version ${h[H_VERSION]} is not ${LAYOUT_VERSION}`);
  const fs = h[H_FLOW_SLOTS]!, ns = h[H_NEIGH_SLOTS]!;
  const { journalCtl, journalData, importsCtl, importsData, ...v } = layout(new Carver(memory, offset), fs, ns);
  return {
    memory, ...v,
    journal: new RecordRing(journalCtl, journalData), imports: new RecordRing(importsCtl, importsData),
    flowCapacity: h[H_FLOW_CAP]!, flowSlots: fs, neighbourCapacity: h[H_NEIGH_CAP]!, neighbourSlots: ns, seed: h[H_SEED]!,
  };
}
