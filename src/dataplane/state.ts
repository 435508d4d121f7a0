// The packet path's own state, laid out over one ArrayBuffer/SharedArrayBuffer: a header with
// the capacities, hash seed and timeouts; the counters; the flow table with its nat reverse
// index; the neighbour (ARP) table. `createState` sizes and zeroes it from options;
// `attachState` maps views over memory that already holds it (a new worker taking over).

import { Carver, Memory, allocMemory, nextPow2 } from '../tables/memory';
import { COUNTER_SLOTS } from './counters';

const MAGIC = 0x56475431; // "VGT1"
const LAYOUT_VERSION = 1;

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
}

// Header words (Uint32Array)
const H_MAGIC = 0, H_VERSION = 1, H_FLOW_CAP = 2, H_FLOW_SLOTS = 3, H_NEIGH_CAP = 4, H_NEIGH_SLOTS = 5, H_SEED = 6;
export const H_SWEEP_CURSOR = 7;
// Header times (Float64Array)
export const T_HALF_OPEN = 0, T_ESTABLISHED = 1, T_CLOSING = 2, T_NEIGH_TTL = 3;

export interface StateViews {
  memory: Memory;
  header: Uint32Array;
  times: Float64Array;
  counters: Float64Array;
  flowCapacity: number;
  flowSlots: number;
  neighbourCapacity: number;
  neighbourSlots: number;
  seed: number;
  // flows (structure of arrays, one entry per slot)
  fState: Uint8Array;
  fCli: Uint32Array;     // client IPv4
  fVip: Uint32Array;     // VIP
  fPorts: Uint32Array;   // client port << 16 | VIP port
  fBackIp: Uint32Array;  // backend IPv4 (nat reverse key and rewrite)
  fBackend: Int32Array;  // backend slot in Tables
  fLast: Float64Array;   // last packet time, ms
  fCreated: Float64Array;
  fPktsIn: Float64Array; // client -> backend
  fPktsOut: Float64Array;// backend -> client (nat)
  fCliMac: Uint8Array;   // 8 bytes per slot: the MAC the client's frames came from (nat replies go there)
  rRef: Int32Array;      // nat reverse index: forward slot + 1, 0 = never used
  // neighbours
  nIp: Uint32Array;
  nMac: Uint8Array;      // 8 bytes per slot
  nSeen: Float64Array;   // last time the mapping was seen, ms
  nState: Uint8Array;    // 0 = never used, 1 = used (stale entries stay used until overwritten)
}

function layout(c: Carver, flowSlots: number, neighSlots: number) {
  return {
    header: c.u32(16),
    times: c.f64(8),
    counters: c.f64(COUNTER_SLOTS),
    fLast: c.f64(flowSlots), fCreated: c.f64(flowSlots), fPktsIn: c.f64(flowSlots), fPktsOut: c.f64(flowSlots),
    fCli: c.u32(flowSlots), fVip: c.u32(flowSlots), fPorts: c.u32(flowSlots), fBackIp: c.u32(flowSlots),
    fBackend: c.i32(flowSlots), rRef: c.i32(flowSlots),
    fState: c.u8(flowSlots), fCliMac: c.u8(flowSlots * 8),
    nSeen: c.f64(neighSlots), nIp: c.u32(neighSlots), nMac: c.u8(neighSlots * 8), nState: c.u8(neighSlots),
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
  const fs = slotsFor(o.flowCapacity), ns = slotsFor(o.neighbourCapacity);
  const memory = allocMemory(stateSize(o), o.shared ?? false);
  const v = layout(new Carver(memory), fs, ns);
  v.header[H_MAGIC] = MAGIC;
  v.header[H_VERSION] = LAYOUT_VERSION;
  v.header[H_FLOW_CAP] = o.flowCapacity;
  v.header[H_FLOW_SLOTS] = fs;
  v.header[H_NEIGH_CAP] = o.neighbourCapacity;
  v.header[H_NEIGH_SLOTS] = ns;
  v.header[H_SEED] = o.seed >>> 0;
  v.times[T_HALF_OPEN] = o.halfOpenTimeoutMs;
  v.times[T_ESTABLISHED] = o.establishedTimeoutMs;
  v.times[T_CLOSING] = o.closingTimeoutMs;
  v.times[T_NEIGH_TTL] = o.neighbourTtlMs;
  return attachState(memory);
}

/** Map views over memory that already holds a state (made by createState, possibly in another thread). */
export function attachState(memory: Memory): StateViews {
  const h = new Uint32Array(memory, 0, 16);
  if (h[H_MAGIC] !== MAGIC) throw new Error('state: memory does not hold vipgate state (bad magic)');
  if (h[H_VERSION] !== LAYOUT_VERSION) throw new Error(`state: layout version ${h[H_VERSION]} is not ${LAYOUT_VERSION}`);
  const fs = h[H_FLOW_SLOTS]!, ns = h[H_NEIGH_SLOTS]!;
  const v = layout(new Carver(memory), fs, ns);
  return {
    memory, ...v,
    flowCapacity: h[H_FLOW_CAP]!, flowSlots: fs, neighbourCapacity: h[H_NEIGH_CAP]!, neighbourSlots: ns, seed: h[H_SEED]!,
  };
}
