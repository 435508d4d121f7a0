// The tables control computes and the packet path only reads: our MAC and mode, the VIP set,
// services (IP mode: VIP -> backend; port mode: VIP:port -> active + priority-ordered standby
// list, the patent's port number / operating-standby / server table) and backends.
//
// One Tables object is immutable once built. Control builds a new one off the hot path and
// publishes it by swapping one reference between packets (Dataplane.publish). Backend slot
// numbers are stable across rebuilds (pass the previous Tables), because flows remember their
// backend by slot.

import { Carver, allocMemory, nextPow2 } from './memory';
import { hash1, hash2 } from './hash';
import { MAX_BACKEND_SLOTS } from '../dataplane/state';
import { macCopy } from '../wire/bytes';

export const MODE_DSR = 0;
export const MODE_NAT = 1;

/** Backend states (bState). Only UP backends receive new flows; DRAIN keeps existing ones. */
export const BackendState = { absent: 0, up: 1, down: 2, drain: 3 } as const;
export type BackendStateName = keyof typeof BackendState;

/**
 * Operational health of a backend (bHealth), as control's health checks see it, kept apart from
 * its admin state (bState: what the config and the API set). A backend takes new flows when its
 * admin state is UP and its health is not DOWN: UNKNOWN (not checked yet) counts as usable, so a
 * fresh start serves at once; the SYN-time check (synCheckMaxAgeMs) is what guards it then.
 */
export const Health = { unknown: 0, up: 1, down: 2 } as const;
export type HealthName = keyof typeof Health;

/** What happens to flows already on a backend whose health is DOWN (svcOnDown, per service). */
export const OnDown = { reset: 0, keep: 1 } as const;
export type OnDownName = keyof typeof OnDown;

/** What the SYN-time check does with held SYNs whose backend did not answer its probe. */
export const SynFail = { next: 0, reset: 1 } as const;
export type SynFailName = keyof typeof SynFail;

export interface TablesSpec {
  mac: Uint8Array;
  mode: 'dsr' | 'nat';
  vips: number[];
  /** weight: share of new flows among a service's active backends (default 100; 0 = only when no other is usable). */
  /**
   * health: operational state from the health checks (default unknown). checked: false for a
   * backend with `health: false` (never checked, always usable, never held by the SYN-time check).
   */
  backends: ReadonlyArray<{ name: string; ip: number; mac: Uint8Array | null; state?: BackendStateName; weight?: number; health?: HealthName; checked?: boolean }>;
  /**
   * port 0 = IP mode (every port of the VIP). `active` is one backend name or a group sharing
   * new flows by weight; `standby` take over in order when no active one is up.
   */
  services: ReadonlyArray<{ vip: number; port: number; active: string | readonly string[]; standby: readonly string[]; onBackendDown?: OnDownName }>;
  /**
   * The SYN-time check (null or absent: off). A SYN for a checked backend whose last good check
   * (state bHealthOkAt) is older than maxAgeMs, and which has no live verified flows (state
   * bVerified), is held while control probes it; onFail says what happens if the probe fails.
   */
  synCheck?: { maxAgeMs: number; onFail: SynFailName } | null;
  /** Echo replies for VIPs: on/off, replies per second and burst (default ICMP_ECHO_DEFAULTS). */
  icmp?: IcmpSpec;
}

export interface IcmpSpec { echo: boolean; echoRate: number; echoBurst: number }

/** Slots of Tables.echoBucket. */
export const ECHO_PER_MS = 0, ECHO_BURST = 1;

/** Linux's own ICMP limits (net.ipv4.icmp_msgs_per_sec = 1000, icmp_msgs_burst = 50). */
export const ICMP_ECHO_DEFAULTS: IcmpSpec = { echo: true, echoRate: 1000, echoBurst: 50 };

/** Entries of a service's pick table: new flows hash into it, so weights resolve to 1/256. */
export const PICK_SIZE = 256;

const HASH_SEED = 0x5eed; // tables are tiny and rebuilt by control; a fixed seed keeps them reproducible

export class Tables {
  readonly mode: number;
  readonly mac: Uint8Array;
  readonly vipCount: number;
  // VIP set: open addressing, key = IPv4 (signed 32-bit), val = VIP index + 1 (0 = empty)
  readonly vipMask: number;
  readonly vipKeys: Int32Array;   // addresses signed, as on the packet path (see s32 in wire/bytes.ts)
  readonly vipVals: Int32Array;
  // service index: key = (vip, port), val = service index + 1 (0 = empty)
  readonly svcMask: number;
  readonly svcKeyVip: Int32Array;
  readonly svcKeyPort: Int32Array;
  readonly svcVals: Int32Array;
  // services: every member slot in preference order, active group first (-1 terminated), and a
  // pick table over the active group's up members, filled by weight (svcPickOn = 0: none usable)
  readonly svcOrder: Int32Array;
  readonly orderStride: number;
  readonly svcPick: Int32Array;
  readonly svcPickOn: Uint8Array;
  // backends by slot
  readonly backendSlots: number;
  readonly bIp: Int32Array;
  readonly bMac: Uint8Array;       // 8 bytes per slot, first 6 used
  readonly bHasMac: Uint8Array;
  readonly bState: Uint8Array;
  readonly bWeight: Int32Array;
  readonly bHealth: Uint8Array;    // Health.*
  readonly bChecked: Uint8Array;   // 1 = health-checked (0: `health: false`)
  readonly svcOnDown: Uint8Array;  // OnDown.* per service
  /** SYN-time check: hold SYNs for a backend not verified within this many ms; 0 = off. */
  readonly synCheckMaxAgeMs: number;
  readonly synCheckOnFail: number; // SynFail.*
  // ICMP echo: answer at all (1/0); the token bucket's refill per ms (ECHO_PER_MS) and size
  // (ECHO_BURST). Doubles live in a typed array: a double class field is a tagged heap number,
  // and mixing one into the packet path's arithmetic makes V8 box the results (garbage per echo).
  readonly echoOn: number;
  readonly echoBucket: Float64Array;

  // Control-side metadata (never read by the packet path).
  readonly backendNames: string[];
  /** Slots given to a backend that did not have one in `prev` (control zeroes their stats). */
  readonly newSlots: number[];
  readonly spec: TablesSpec;

  /**
   * `prev`: the tables being replaced (slots stay stable). `busy(slot)`: true while flows still
   * reference a slot; such a slot is not handed to a new backend, or its flows would follow it.
   */
  constructor(spec: TablesSpec, prev?: Tables, busy: (slot: number) => boolean = () => false) {
    this.spec = spec;
    // Stable slots: a backend keeps its slot from `prev`; new names take free slots.
    const names: string[] = prev ? prev.backendNames.slice() : [];
    const wanted = new Set(spec.backends.map((b) => b.name));
    for (let i = 0; i < names.length; i++) if (names[i] && !wanted.has(names[i]!)) names[i] = '';
    this.newSlots = [];
    for (const b of spec.backends) {
      if (names.includes(b.name)) continue;
      let free = -1;
      for (let i = 0; i < names.length && free < 0; i++) if (names[i] === '' && !busy(i)) free = i;
      if (free < 0) free = names.length;
      if (free >= MAX_BACKEND_SLOTS) throw new Error(`tables: more than ${MAX_BACKEND_SLOTS} backend slots in use`);
      names[free] = b.name;
      this.newSlots.push(free);
    }
    this.backendNames = names;
    const slotOf = (n: string): number => names.indexOf(n);
    const groupOf = (a: string | readonly string[]): readonly string[] => typeof a === 'string' ? [a] : a;

    const vipSlots = nextPow2(Math.max(16, spec.vips.length * 2));
    const svcSlots = nextPow2(Math.max(16, spec.services.length * 2));
    const nSvc = Math.max(1, spec.services.length);
    const stride = 1 + spec.services.reduce((m, s) => Math.max(m, groupOf(s.active).length + s.standby.length), 0);
    const nB = Math.max(1, names.length);
    const layout = (c: Carver) => ({
      mac: c.u8(8),
      vipKeys: c.i32(vipSlots), vipVals: c.i32(vipSlots),
      svcKeyVip: c.i32(svcSlots), svcKeyPort: c.i32(svcSlots), svcVals: c.i32(svcSlots),
      svcOrder: c.i32(nSvc * stride), svcPick: c.i32(nSvc * PICK_SIZE), svcPickOn: c.u8(nSvc), svcOnDown: c.u8(nSvc),
      bIp: c.i32(nB), bMac: c.u8(nB * 8), bHasMac: c.u8(nB), bState: c.u8(nB), bWeight: c.i32(nB),
      bHealth: c.u8(nB), bChecked: c.u8(nB),
    });
    const measure = new Carver(null);
    layout(measure);
    const v = layout(new Carver(allocMemory(measure.size, false)));

    this.mode = spec.mode === 'nat' ? MODE_NAT : MODE_DSR;
    const icmp = spec.icmp ?? ICMP_ECHO_DEFAULTS;
    if (!(icmp.echoRate >= 1 && icmp.echoBurst >= 1)) throw new Error('tables: icmp echo rate and burst must be at least 1');
    this.echoOn = icmp.echo ? 1 : 0;
    this.echoBucket = Float64Array.of(icmp.echoRate / 1000, icmp.echoBurst);
    this.mac = v.mac;
    macCopy(this.mac, 0, spec.mac, 0);
    this.vipCount = spec.vips.length;
    this.vipMask = vipSlots - 1;
    this.vipKeys = v.vipKeys; this.vipVals = v.vipVals;
    spec.vips.forEach((ipU, i) => {
      const ip = ipU | 0;
      let s = hash1(ip, HASH_SEED) & this.vipMask;
      while (this.vipVals[s] !== 0 && this.vipKeys[s] !== ip) s = (s + 1) & this.vipMask;
      this.vipKeys[s] = ip; this.vipVals[s] = i + 1;
    });

    this.svcMask = svcSlots - 1;
    this.svcKeyVip = v.svcKeyVip; this.svcKeyPort = v.svcKeyPort; this.svcVals = v.svcVals;
    this.svcOrder = v.svcOrder; this.orderStride = stride;
    this.svcPick = v.svcPick; this.svcPickOn = v.svcPickOn;
    this.svcOrder.fill(-1);

    this.backendSlots = nB;
    this.bIp = v.bIp; this.bMac = v.bMac; this.bHasMac = v.bHasMac; this.bState = v.bState; this.bWeight = v.bWeight;
    this.bHealth = v.bHealth; this.bChecked = v.bChecked; this.svcOnDown = v.svcOnDown;
    this.synCheckMaxAgeMs = spec.synCheck ? Math.max(1, spec.synCheck.maxAgeMs) : 0;
    this.synCheckOnFail = SynFail[spec.synCheck?.onFail ?? 'next'];
    for (const b of spec.backends) {
      const s = slotOf(b.name);
      this.bIp[s] = b.ip;
      if (b.mac) { macCopy(this.bMac, s * 8, b.mac, 0); this.bHasMac[s] = 1; }
      this.bState[s] = BackendState[b.state ?? 'up'];
      this.bWeight[s] = b.weight ?? 100;
      this.bChecked[s] = b.checked === false ? 0 : 1;
      this.bHealth[s] = b.checked === false ? Health.up : Health[b.health ?? 'unknown'];
    }

    spec.services.forEach((svc, i) => {
      const vip = svc.vip | 0;
      let s = hash2(vip, svc.port, HASH_SEED) & this.svcMask;
      while (this.svcVals[s] !== 0 && !(this.svcKeyVip[s] === vip && this.svcKeyPort[s] === svc.port)) s = (s + 1) & this.svcMask;
      this.svcKeyVip[s] = vip; this.svcKeyPort[s] = svc.port; this.svcVals[s] = i + 1;
      const group = groupOf(svc.active).map(slotOf);
      [...group, ...svc.standby.map(slotOf)].forEach((b, j) => { this.svcOrder[i * stride + j] = b; });
      this.svcOnDown[i] = OnDown[svc.onBackendDown ?? 'reset'];
      this.fillPick(i, group.filter((b) => this.usable(b) && this.bWeight[b]! > 0));
    });
  }

  /**
   * Spread PICK_SIZE entries over `group` in proportion to weight, interleaved (smooth weighted
   * round robin, as nginx does), so any run of entries is close to the weights.
   */
  private fillPick(svc: number, group: number[]): void {
    if (group.length === 0) return;
    this.svcPickOn[svc] = 1;
    const total = group.reduce((a, b) => a + this.bWeight[b]!, 0);
    const cur = group.map(() => 0);
    for (let e = 0; e < PICK_SIZE; e++) {
      let best = 0;
      for (let j = 0; j < group.length; j++) {
        cur[j]! += this.bWeight[group[j]!]!;
        if (cur[j]! > cur[best]!) best = j;
      }
      cur[best]! -= total;
      this.svcPick[svc * PICK_SIZE + e] = group[best]!;
    }
  }

  /** A backend slot that may take new flows: admin state UP and health not DOWN. */
  usable(b: number): boolean { return this.bState[b] === BackendState.up && this.bHealth[b] !== Health.down; }

  /** VIP index for an IPv4 address (signed or unsigned 32-bit), or -1. */
  vipIndex(ipAny: number): number {
    const mask = this.vipMask, ip = ipAny | 0;
    let s = hash1(ip, HASH_SEED) & mask;
    for (;;) {
      const v = this.vipVals[s]!;
      if (v === 0) return -1;
      if (this.vipKeys[s] === ip) return v - 1;
      s = (s + 1) & mask;
    }
  }

  /** Service index for (vip, port): a port-mode service for that port first, else the VIP's IP-mode service; -1 if none. */
  serviceIndex(vipAny: number, port: number): number {
    const vip = vipAny | 0;
    const i = this.svcFind(vip, port);
    return i >= 0 ? i : this.svcFind(vip, 0);
  }

  private svcFind(vip: number, port: number): number {
    const mask = this.svcMask;
    let s = hash2(vip, port, HASH_SEED) & mask;
    for (;;) {
      const v = this.svcVals[s]!;
      if (v === 0) return -1;
      if (this.svcKeyVip[s] === vip && this.svcKeyPort[s] === port) return v - 1;
      s = (s + 1) & mask;
    }
  }

  /**
   * The backend slot for a new flow of service `svc` whose hash is `h`: from the active group by
   * weight; else the first usable member in preference order with a weight, else any up one; -1 if none.
   */
  pickBackend(svc: number, h: number): number {
    if (this.svcPickOn[svc] === 1) return this.svcPick[svc * PICK_SIZE + (h & (PICK_SIZE - 1))]!;
    const base = svc * this.orderStride;
    let zero = -1;
    for (let j = 0; j < this.orderStride; j++) {
      const b = this.svcOrder[base + j]!;
      if (b < 0) break;
      if (!this.usable(b)) continue;
      if (this.bWeight[b]! > 0) return b;
      if (zero < 0) zero = b;
    }
    return zero;
  }

  /** Control side: the backend slots that take new flows of `svc` now. */
  serving(svc: number): number[] {
    if (this.svcPickOn[svc] === 1) return [...new Set(this.svcPick.subarray(svc * PICK_SIZE, (svc + 1) * PICK_SIZE))];
    const b = this.pickBackend(svc, 0);
    return b < 0 ? [] : [b];
  }

  backendSlot(name: string): number { return this.backendNames.indexOf(name); }
}
