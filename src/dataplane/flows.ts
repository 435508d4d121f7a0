// The flow table: open addressing with linear probing over the typed arrays of StateViews,
// keyed by a numeric hash of (client IP, VIP, client port << 16 | VIP port). TCP only.
//
// Entries expire lazily: a lookup that meets an idle-too-long entry expires it; `sweep` walks
// the table a slice at a time to expire the rest and keep flows_active true. An expired entry
// becomes DEAD (a tombstone: probing continues past it, inserts reuse it); EMPTY means never
// used, and probing stops there. Every probe sequence is bounded by MAX_PROBE, so the worst case
// per packet is fixed whatever the table holds. A full table (flows_active = capacity, or no
// reusable slot within MAX_PROBE) refuses the new flow: the caller drops the SYN and counts
// flow_table_full; existing flows are never evicted for new ones (Katran under a SYN flood).
//
// nat mode keeps a second index (rRef) keyed by the backend's view of the flow
// (backend IP, client IP, client port << 16 | VIP port) pointing at the forward slot; an entry
// is valid only while the slot it points to holds a live flow with that same reverse key.

import { StateViews, T_HALF_OPEN, T_ESTABLISHED, T_CLOSING, H_SWEEP_CURSOR } from './state';
import { hash3 } from '../tables/hash';
import { Ctr } from './counters';

export const FS_EMPTY = 0;
export const FS_DEAD = 1;
export const FS_SYN = 2;         // SYN seen, not yet acknowledged: half-open timeout
export const FS_ESTABLISHED = 3;
export const FS_CLOSING = 4;     // FIN or RST seen: closing timeout
export const FLOW_STATE_NAMES = ['empty', 'dead', 'syn', 'established', 'closing'] as const;

/** Longest probe sequence: bounds the work per packet whatever the table holds. */
export const MAX_PROBE = 32;
const REVERSE_SALT = 0x7f4a7c15;

export class FlowTable {
  readonly mask: number;
  readonly capacity: number;
  private readonly seed: number;
  private readonly rseed: number;

  constructor(private readonly v: StateViews) {
    this.mask = v.flowSlots - 1;
    this.capacity = v.flowCapacity;
    this.seed = v.seed | 0;
    this.rseed = (v.seed ^ REVERSE_SALT) | 0;
  }

  timeoutOf(state: number): number {
    const t = this.v.times;
    return state === FS_ESTABLISHED ? t[T_ESTABLISHED]! : state === FS_SYN ? t[T_HALF_OPEN]! : t[T_CLOSING]!;
  }

  private expire(s: number): void {
    const v = this.v;
    v.fState[s] = FS_DEAD;
    v.counters[Ctr.flows_active]!--;
    v.counters[Ctr.flows_expired]!++;
  }

  /** Slot of the live flow with this forward key, or -1. Meeting it expired, expires it. */
  lookup(cli: number, vip: number, ports: number, now: number): number {
    const v = this.v, mask = this.mask;
    let s = hash3(cli, vip, ports, this.seed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const st = v.fState[s]!;
      if (st === FS_EMPTY) return -1;
      if (st !== FS_DEAD && v.fCli[s] === cli && v.fVip[s] === vip && v.fPorts[s] === ports) {
        if (now - v.fLast[s]! > this.timeoutOf(st)) { this.expire(s); return -1; }
        return s;
      }
      s = (s + 1) & mask;
    }
    return -1;
  }

  /**
   * Create a flow whose key the caller has just looked up and not found. Returns the slot, or -1
   * when the table is full (nothing is changed then, except expiring idle entries met on the way).
   */
  insert(cli: number, vip: number, ports: number, backend: number, backIp: number, now: number): number {
    const v = this.v, mask = this.mask;
    let s = hash3(cli, vip, ports, this.seed) & mask;
    let free = -1;
    for (let i = 0; i < MAX_PROBE; i++) {
      const st = v.fState[s]!;
      if (st === FS_EMPTY || st === FS_DEAD) { free = s; break; }
      if (now - v.fLast[s]! > this.timeoutOf(st)) { this.expire(s); free = s; break; }
      s = (s + 1) & mask;
    }
    if (free < 0 || v.counters[Ctr.flows_active]! >= this.capacity) return -1;
    v.fState[free] = FS_SYN;
    v.fCli[free] = cli; v.fVip[free] = vip; v.fPorts[free] = ports;
    v.fBackend[free] = backend; v.fBackIp[free] = backIp;
    v.fLast[free] = now; v.fCreated[free] = now;
    v.fPktsIn[free] = 0; v.fPktsOut[free] = 0;
    v.counters[Ctr.flows_active]!++;
    v.counters[Ctr.flows_created]!++;
    return free;
  }

  /** End a flow now (its 5-tuple is being reused by a new connection). */
  remove(s: number): void {
    if (this.v.fState[s]! > FS_DEAD) this.expire(s);
  }

  // ---- nat reverse index ----

  /** Forward slot of the live flow whose backend-side key is this, or -1. */
  reverseLookup(backIp: number, cli: number, ports: number, now: number): number {
    const v = this.v, mask = this.mask;
    let s = hash3(backIp, cli, ports, this.rseed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const r = v.rRef[s]!;
      if (r === 0) return -1;
      const f = r - 1;
      const st = v.fState[f]!;
      if (st > FS_DEAD && v.fBackIp[f] === backIp && v.fCli[f] === cli && v.fPorts[f] === ports) {
        if (now - v.fLast[f]! > this.timeoutOf(st)) { this.expire(f); return -1; }
        return f;
      }
      s = (s + 1) & mask;
    }
    return -1;
  }

  /** A reverse-index slot free for this key (never used, or pointing at a flow that no longer has this key), or -1. */
  reverseFreeSlot(backIp: number, cli: number, ports: number): number {
    const v = this.v, mask = this.mask;
    let s = hash3(backIp, cli, ports, this.rseed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      const r = v.rRef[s]!;
      if (r === 0) return s;
      const f = r - 1;
      if (!(v.fState[f]! > FS_DEAD && v.fBackIp[f] === backIp && v.fCli[f] === cli && v.fPorts[f] === ports)) return s;
      s = (s + 1) & mask;
    }
    return -1;
  }

  setReverse(rslot: number, flowSlot: number): void {
    this.v.rRef[rslot] = flowSlot + 1;
  }

  /**
   * Expire idle flows, visiting at most `budget` slots from where the last sweep stopped
   * (the cursor lives in shared memory). Returns the number expired.
   */
  sweep(now: number, budget: number): number {
    const v = this.v, n = v.flowSlots;
    let cur = v.header[H_SWEEP_CURSOR]! % n, expired = 0;
    for (let i = 0; i < budget && i < n; i++) {
      const st = v.fState[cur]!;
      if (st > FS_DEAD && now - v.fLast[cur]! > this.timeoutOf(st)) { this.expire(cur); expired++; }
      cur = (cur + 1) % n;
    }
    v.header[H_SWEEP_CURSOR] = cur;
    return expired;
  }
}
