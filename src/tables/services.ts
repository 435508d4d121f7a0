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
import { macCopy } from '../wire/bytes';

export const MODE_DSR = 0;
export const MODE_NAT = 1;

/** Backend states (bState). Only UP backends receive new flows; DRAIN keeps existing ones. */
export const BackendState = { absent: 0, up: 1, down: 2, drain: 3 } as const;
export type BackendStateName = keyof typeof BackendState;

export interface TablesSpec {
  mac: Uint8Array;
  mode: 'dsr' | 'nat';
  vips: number[];
  backends: ReadonlyArray<{ name: string; ip: number; mac: Uint8Array | null; state?: BackendStateName }>;
  /** port 0 = IP mode (every port of the VIP); active/standby are backend names. */
  services: ReadonlyArray<{ vip: number; port: number; active: string; standby: readonly string[] }>;
}

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
  // services: active backend slot, and standby slots in priority order (-1 terminated)
  readonly svcActive: Int32Array;
  readonly svcStandby: Int32Array;
  readonly standbyStride: number;
  // backends by slot
  readonly backendSlots: number;
  readonly bIp: Int32Array;
  readonly bMac: Uint8Array;       // 8 bytes per slot, first 6 used
  readonly bHasMac: Uint8Array;
  readonly bState: Uint8Array;

  // Control-side metadata (never read by the packet path).
  readonly backendNames: string[];
  readonly spec: TablesSpec;

  constructor(spec: TablesSpec, prev?: Tables) {
    this.spec = spec;
    // Stable slots: a backend keeps its slot from `prev`; new names take free slots.
    const names: string[] = prev ? prev.backendNames.slice() : [];
    const wanted = new Set(spec.backends.map((b) => b.name));
    for (let i = 0; i < names.length; i++) if (names[i] && !wanted.has(names[i]!)) names[i] = '';
    for (const b of spec.backends) {
      if (names.includes(b.name)) continue;
      const free = names.indexOf('');
      if (free >= 0) names[free] = b.name; else names.push(b.name);
    }
    this.backendNames = names;
    const slotOf = (n: string): number => names.indexOf(n);

    const vipSlots = nextPow2(Math.max(16, spec.vips.length * 2));
    const svcSlots = nextPow2(Math.max(16, spec.services.length * 2));
    const nSvc = Math.max(1, spec.services.length);
    const stride = 1 + spec.services.reduce((m, s) => Math.max(m, s.standby.length), 0);
    const nB = Math.max(1, names.length);
    const layout = (c: Carver) => ({
      mac: c.u8(8),
      vipKeys: c.i32(vipSlots), vipVals: c.i32(vipSlots),
      svcKeyVip: c.i32(svcSlots), svcKeyPort: c.i32(svcSlots), svcVals: c.i32(svcSlots),
      svcActive: c.i32(nSvc), svcStandby: c.i32(nSvc * stride),
      bIp: c.i32(nB), bMac: c.u8(nB * 8), bHasMac: c.u8(nB), bState: c.u8(nB),
    });
    const measure = new Carver(null);
    layout(measure);
    const v = layout(new Carver(allocMemory(measure.size, false)));

    this.mode = spec.mode === 'nat' ? MODE_NAT : MODE_DSR;
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
    this.svcActive = v.svcActive; this.svcStandby = v.svcStandby; this.standbyStride = stride;
    this.svcStandby.fill(-1);
    spec.services.forEach((svc, i) => {
      const vip = svc.vip | 0;
      let s = hash2(vip, svc.port, HASH_SEED) & this.svcMask;
      while (this.svcVals[s] !== 0 && !(this.svcKeyVip[s] === vip && this.svcKeyPort[s] === svc.port)) s = (s + 1) & this.svcMask;
      this.svcKeyVip[s] = vip; this.svcKeyPort[s] = svc.port; this.svcVals[s] = i + 1;
      this.svcActive[i] = slotOf(svc.active);
      svc.standby.forEach((n, j) => { this.svcStandby[i * stride + j] = slotOf(n); });
    });

    this.backendSlots = nB;
    this.bIp = v.bIp; this.bMac = v.bMac; this.bHasMac = v.bHasMac; this.bState = v.bState;
    for (const b of spec.backends) {
      const s = slotOf(b.name);
      this.bIp[s] = b.ip;
      if (b.mac) { macCopy(this.bMac, s * 8, b.mac, 0); this.bHasMac[s] = 1; }
      this.bState[s] = BackendState[b.state ?? 'up'];
    }
  }

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

  /** The backend slot that gets a new flow of service `svc`: the active one if up, else the first up standby; -1 if none. */
  pickBackend(svc: number): number {
    const a = this.svcActive[svc]!;
    if (a >= 0 && this.bState[a] === BackendState.up) return a;
    const base = svc * this.standbyStride;
    for (let j = 0; ; j++) {
      const b = this.svcStandby[base + j]!;
      if (b < 0) return -1;
      if (this.bState[b] === BackendState.up) return b;
    }
  }

  backendSlot(name: string): number { return this.backendNames.indexOf(name); }
}
