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
  /**
   * Cluster (issue 11): the VIPs (and nat gateway) this node answers ARP for now, its share of
   * the cluster's; the others' requests are dropped as arp_not_owner. null or absent: every VIP.
   */
  arpVips?: number[] | null;
  /** Cluster (issue 11): journal the flows' changes for the peers, and adopt unknown flows by their pick. */
  cluster?: boolean;
}

export interface IcmpSpec { echo: boolean; echoRate: number; echoBurst: number }

/** Slots of Tables.echoBucket. */
export const ECHO_PER_MS = 0, ECHO_BURST = 1;

/** Linux's own ICMP limits (net.ipv4.icmp_msgs_per_sec = 1000, icmp_msgs_burst = 50). */
export const ICMP_ECHO_DEFAULTS: IcmpSpec = { echo: true, echoRate: 1000, echoBurst: 50 };

/** Entries of a service's pick table: new flows hash into it, so weights resolve to 1/256. */
export const PICK_SIZE = 256;

const HASH_SEED = 0x5eed; // tables are tiny and rebuilt by control; a fixed seed keeps them reproducible

/**
 * A Tables image's first words: the shape of its arrays and its scalars, so the image alone
 * (bytes copied out of a table bank, src/shm/banks.ts) is enough to rebuild the same views.
 * Int32 words; IMG_MAGIC tells an image from other bytes, IMG_BYTES is the image's whole size.
 */
const IMG_MAGIC = 0, IMG_BYTES = 1, IMG_VIP_SLOTS = 2, IMG_SVC_SLOTS = 3, IMG_NSVC = 4, IMG_STRIDE = 5, IMG_NB = 6,
  IMG_MODE = 7, IMG_VIP_COUNT = 8, IMG_SYN_ON_FAIL = 9, IMG_ECHO_ON = 10, IMG_CLUSTER = 11, IMG_WORDS = 12;
/**
 * "VGTI" (vipgate tables image), layout 2: change the number when the layout below changes.
 * 2: IMG_CLUSTER, the per-VIP ARP flags (vipArp) and the backend-address index (bipKeys/bipVals) of issue 11.
 */
const IMG_MAGIC_V1 = 0x56475402;

interface ImageDims { vipSlots: number; svcSlots: number; nSvc: number; stride: number; nB: number }

/** Slots of the backend-address index: a function of nB alone, so an image's header is enough to carve it. */
function bipSlotsFor(nB: number): number { return nextPow2(Math.max(16, nB * 2)); }

/** The one layout of a Tables image, measured (Carver(null)) or carved over its memory. */
function carveImage(c: Carver, d: ImageDims) {
  return {
    hdr: c.i32(IMG_WORDS),
    echoBucket: c.f64(2), synMaxAge: c.f64(1),
    mac: c.u8(8),
    vipKeys: c.i32(d.vipSlots), vipVals: c.i32(d.vipSlots),
    svcKeyVip: c.i32(d.svcSlots), svcKeyPort: c.i32(d.svcSlots), svcVals: c.i32(d.svcSlots),
    svcOrder: c.i32(d.nSvc * d.stride), svcPick: c.i32(d.nSvc * PICK_SIZE), svcPickOn: c.u8(d.nSvc), svcOnDown: c.u8(d.nSvc),
    bIp: c.i32(d.nB), bMac: c.u8(d.nB * 8), bHasMac: c.u8(d.nB), bState: c.u8(d.nB), bWeight: c.i32(d.nB),
    bHealth: c.u8(d.nB), bChecked: c.u8(d.nB),
    vipArp: c.u8(d.vipSlots), bipKeys: c.i32(bipSlotsFor(d.nB)), bipVals: c.i32(bipSlotsFor(d.nB)),
  };
}
type ImageViews = ReturnType<typeof carveImage>;

function imageSize(d: ImageDims): number {
  const m = new Carver(null);
  carveImage(m, d);
  return m.size;
}

/** What shapes a Tables image: VIPs, services, the most members of one service, backend slots. */
export interface TablesCounts { vips: number; services: number; maxMembers: number; backendSlots: number }

function dimsFor(n: TablesCounts): ImageDims {
  return {
    vipSlots: nextPow2(Math.max(16, n.vips * 2)),
    svcSlots: nextPow2(Math.max(16, n.services * 2)),
    nSvc: Math.max(1, n.services),
    stride: 1 + n.maxMembers,
    nB: Math.max(1, n.backendSlots),
  };
}

/**
 * Bytes of the image of tables with these counts: what a table bank must hold for them (about
 * 1 KiB per service for its pick table, 4 bytes per member slot of each service, 20 per backend).
 */
export function tablesImageBytes(n: TablesCounts): number { return imageSize(dimsFor(n)); }

/** Control-side metadata of a Tables built from a spec (a Tables read from a bank has none). */
interface TablesMeta { spec: TablesSpec; backendNames: string[] }

/** What the one constructor path assigns from: carved views, new slots, metadata (or null). */
class TablesParts {
  constructor(readonly image: Uint8Array, readonly v: ImageViews, readonly newSlots: number[], readonly meta: TablesMeta | null) {}
}

const NO_NAMES: readonly string[] = Object.freeze([]);

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
  /** 1: cluster on (journal the flows' changes, adopt unknown flows); 0: off. */
  readonly cluster: number;
  /** Per VIP index: 1 when this node answers ARP for it (all 1 without a cluster). */
  readonly vipArp: Uint8Array;
  /** Backend IPv4 -> slot + 1 (0 = empty), open addressing: a peer's flow names its backend by address. */
  private readonly bipKeys: Int32Array;
  private readonly bipVals: Int32Array;
  /**
   * Slots given to a backend that did not have one in the tables this one replaces: the packet
   * path forgets what it knew of the slot's previous backend (Dataplane.publish), control zeroes
   * its stats. Carried through a table bank (the union over publishes the bank coalesced).
   */
  readonly newSlots: number[];
  /**
   * Every view above lies in this one block of bytes, which begins with the scalars and array
   * sizes (IMG_*): a table bank publishes a Tables by copying it, and Tables.fromImage rebuilds
   * the same views over a copy.
   */
  readonly image: Uint8Array;
  private readonly meta: TablesMeta | null;

  /**
   * `prev`: the tables being replaced (slots stay stable). `busy(slot)`: true while flows still
   * reference a slot; such a slot is not handed to a new backend, or its flows would follow it.
   *
   * Tables read from a bank come through this same constructor (fromImage) so that both kinds
   * have one hidden class: the packet path's field loads stay monomorphic whichever it is given.
   */
  constructor(spec: TablesSpec, prev?: Pick<Tables, 'backendNames' | 'hasMeta'>, busy?: (slot: number) => boolean);
  constructor(parts: TablesParts);
  constructor(src: TablesSpec | TablesParts, prev?: Pick<Tables, 'backendNames' | 'hasMeta'>, busy: (slot: number) => boolean = () => false) {
    const p = src instanceof TablesParts ? src : buildParts(src, prev, busy);
    const v = p.v, h = v.hdr;
    this.mode = h[IMG_MODE]!;
    this.mac = v.mac;
    this.vipCount = h[IMG_VIP_COUNT]!;
    this.vipMask = h[IMG_VIP_SLOTS]! - 1;
    this.vipKeys = v.vipKeys; this.vipVals = v.vipVals;
    this.svcMask = h[IMG_SVC_SLOTS]! - 1;
    this.svcKeyVip = v.svcKeyVip; this.svcKeyPort = v.svcKeyPort; this.svcVals = v.svcVals;
    this.svcOrder = v.svcOrder; this.orderStride = h[IMG_STRIDE]!;
    this.svcPick = v.svcPick; this.svcPickOn = v.svcPickOn;
    this.backendSlots = h[IMG_NB]!;
    this.bIp = v.bIp; this.bMac = v.bMac; this.bHasMac = v.bHasMac; this.bState = v.bState; this.bWeight = v.bWeight;
    this.bHealth = v.bHealth; this.bChecked = v.bChecked; this.svcOnDown = v.svcOnDown;
    this.synCheckMaxAgeMs = v.synMaxAge[0]!;
    this.synCheckOnFail = h[IMG_SYN_ON_FAIL]!;
    this.echoOn = h[IMG_ECHO_ON]!;
    this.echoBucket = v.echoBucket;
    this.cluster = h[IMG_CLUSTER]!;
    this.vipArp = v.vipArp;
    this.bipKeys = v.bipKeys; this.bipVals = v.bipVals;
    this.newSlots = p.newSlots;
    this.image = p.image;
    this.meta = p.meta;
  }

  /**
   * A Tables over `image` (bytes this process owns: a copy out of a table bank) with `newSlots`;
   * throws if the image's own header does not describe exactly these bytes. It has no spec and
   * no backend names: those stay with control.
   */
  static fromImage(image: Uint8Array, newSlots: number[]): Tables {
    if (image.byteOffset % 8 !== 0 || image.byteLength < IMG_WORDS * 4) throw new Error(`tables image: ${image.byteLength} bytes at offset ${image.byteOffset}, too short or not 8-byte aligned`);
    const h = new Int32Array(image.buffer, image.byteOffset, IMG_WORDS);
    if (h[IMG_MAGIC] !== IMG_MAGIC_V1) throw new Error(`tables image: magic 0x${(h[IMG_MAGIC]! >>> 0).toString(16)}, expected 0x${IMG_MAGIC_V1.toString(16)} (written by another vipgate version?)`);
    const d: ImageDims = { vipSlots: h[IMG_VIP_SLOTS]!, svcSlots: h[IMG_SVC_SLOTS]!, nSvc: h[IMG_NSVC]!, stride: h[IMG_STRIDE]!, nB: h[IMG_NB]! };
    const pow2 = (n: number) => n >= 16 && (n & (n - 1)) === 0;
    if (!pow2(d.vipSlots) || !pow2(d.svcSlots) || d.nSvc < 1 || d.stride < 1 || d.nB < 1 || d.nB > MAX_BACKEND_SLOTS) {
      throw new Error(`tables image: impossible sizes ${JSON.stringify(d)}`);
    }
    const size = imageSize(d);
    if (h[IMG_BYTES] !== size || image.byteLength !== size) throw new Error(`tables image: ${image.byteLength} bytes (header says ${h[IMG_BYTES]}), its sizes need ${size}`);
    const v = carveImage(new Carver(image.buffer, image.byteOffset), d);
    return new Tables(new TablesParts(image, v, newSlots, null));
  }

  /** Control-side: the spec these tables were built from. Not in a Tables read from a bank. */
  get spec(): TablesSpec {
    if (!this.meta) throw new Error('tables: this Tables was read from a table bank and has no spec (control-side metadata stays with control: ask the controller)');
    return this.meta.spec;
  }

  /** Control-side: backend name per slot ('' = free). Empty in a Tables read from a bank (slots only). */
  get backendNames(): readonly string[] { return this.meta ? this.meta.backendNames : NO_NAMES; }

  /** True for tables built by control from a spec (false: read from a table bank). */
  get hasMeta(): boolean { return this.meta !== null; }
  /** A backend slot that may take new flows: admin state UP and health not DOWN. */
  usable(b: number): boolean { return this.bState[b] === BackendState.up && this.bHealth[b] !== Health.down; }

  /** VIP index for an IPv4 address (signed or unsigned 32-bit), or -1. */
  vipIndex(ipAny: number): number { return find1(this.vipKeys, this.vipVals, this.vipMask, ipAny | 0); }

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

  /** The backend slot with this IPv4 address (signed or unsigned), or -1 (several: the lowest slot). */
  backendByIp(ipAny: number): number { return find1(this.bipKeys, this.bipVals, this.bipKeys.length - 1, ipAny | 0); }
}

/**
 * The two address indexes (VIPs, backend addresses): open addressing over a power-of-2 number of
 * slots, key an IPv4 address (signed), value index + 1 (0 = empty). find1 looks up (-1: absent);
 * put1 adds, keeping the first value put for a key.
 */
function find1(keys: Int32Array, vals: Int32Array, mask: number, ip: number): number {
  let s = hash1(ip, HASH_SEED) & mask;
  for (;;) {
    const v = vals[s]!;
    if (v === 0) return -1;
    if (keys[s] === ip) return v - 1;
    s = (s + 1) & mask;
  }
}
function put1(keys: Int32Array, vals: Int32Array, ip: number, index: number): void {
  const mask = keys.length - 1;
  let s = hash1(ip, HASH_SEED) & mask;
  while (vals[s] !== 0 && keys[s] !== ip) s = (s + 1) & mask;
  if (vals[s] === 0) { keys[s] = ip; vals[s] = index + 1; }
}

/** A backend slot that may take new flows (Tables.usable, over the views while they are built). */
function usableIn(v: ImageViews, b: number): boolean { return v.bState[b] === BackendState.up && v.bHealth[b] !== Health.down; }

/**
 * Spread PICK_SIZE entries of service `svc` over `group` in proportion to weight, interleaved
 * (smooth weighted round robin, as nginx does), so any run of entries is close to the weights.
 */
function fillPick(v: ImageViews, svc: number, group: number[]): void {
  if (group.length === 0) return;
  v.svcPickOn[svc] = 1;
  const total = group.reduce((a, b) => a + v.bWeight[b]!, 0);
  const cur = group.map(() => 0);
  for (let e = 0; e < PICK_SIZE; e++) {
    let best = 0;
    for (let j = 0; j < group.length; j++) {
      cur[j]! += v.bWeight[group[j]!]!;
      if (cur[j]! > cur[best]!) best = j;
    }
    cur[best]! -= total;
    v.svcPick[svc * PICK_SIZE + e] = group[best]!;
  }
}

/** Control's path from a spec to the image a Tables is made of (see the Tables constructor). */
function buildParts(spec: TablesSpec, prev: Pick<Tables, 'backendNames' | 'hasMeta'> | undefined, busy: (slot: number) => boolean): TablesParts {
  if (prev && !prev.hasMeta) throw new Error('tables: prev must be tables built by control (a Tables read from a bank has no backend names to keep slots stable by)');
  // Stable slots: a backend keeps its slot from `prev`; new names take free slots.
  const names: string[] = prev ? prev.backendNames.slice() : [];
  const wanted = new Set(spec.backends.map((b) => b.name));
  for (let i = 0; i < names.length; i++) if (names[i] && !wanted.has(names[i]!)) names[i] = '';
  const newSlots: number[] = [];
  for (const b of spec.backends) {
    if (names.includes(b.name)) continue;
    let free = -1;
    for (let i = 0; i < names.length && free < 0; i++) if (names[i] === '' && !busy(i)) free = i;
    if (free < 0) free = names.length;
    if (free >= MAX_BACKEND_SLOTS) throw new Error(`tables: more than ${MAX_BACKEND_SLOTS} backend slots in use`);
    names[free] = b.name;
    newSlots.push(free);
  }
  const slotOf = (n: string): number => names.indexOf(n);
  const groupOf = (a: string | readonly string[]): readonly string[] => typeof a === 'string' ? [a] : a;

  const d = dimsFor({
    vips: spec.vips.length, services: spec.services.length, backendSlots: names.length,
    maxMembers: spec.services.reduce((m, s) => Math.max(m, groupOf(s.active).length + s.standby.length), 0),
  });
  const size = imageSize(d);
  const mem = allocMemory(size, false);
  const v = carveImage(new Carver(mem), d);
  const h = v.hdr;
  h[IMG_MAGIC] = IMG_MAGIC_V1; h[IMG_BYTES] = size;
  h[IMG_VIP_SLOTS] = d.vipSlots; h[IMG_SVC_SLOTS] = d.svcSlots; h[IMG_NSVC] = d.nSvc; h[IMG_STRIDE] = d.stride; h[IMG_NB] = d.nB;

  h[IMG_MODE] = spec.mode === 'nat' ? MODE_NAT : MODE_DSR;
  const icmp = spec.icmp ?? ICMP_ECHO_DEFAULTS;
  if (!(icmp.echoRate >= 1 && icmp.echoBurst >= 1)) throw new Error('tables: icmp echo rate and burst must be at least 1');
  h[IMG_ECHO_ON] = icmp.echo ? 1 : 0;
  v.echoBucket[ECHO_PER_MS] = icmp.echoRate / 1000; v.echoBucket[ECHO_BURST] = icmp.echoBurst;
  macCopy(v.mac, 0, spec.mac, 0);
  h[IMG_VIP_COUNT] = spec.vips.length;
  spec.vips.forEach((ipU, i) => put1(v.vipKeys, v.vipVals, ipU | 0, i));

  const svcMask = d.svcSlots - 1;
  v.svcOrder.fill(-1);
  v.synMaxAge[0] = spec.synCheck ? Math.max(1, spec.synCheck.maxAgeMs) : 0;
  h[IMG_SYN_ON_FAIL] = SynFail[spec.synCheck?.onFail ?? 'next'];
  for (const b of spec.backends) {
    const s = slotOf(b.name);
    v.bIp[s] = b.ip;
    if (b.mac) { macCopy(v.bMac, s * 8, b.mac, 0); v.bHasMac[s] = 1; }
    v.bState[s] = BackendState[b.state ?? 'up'];
    v.bWeight[s] = b.weight ?? 100;
    v.bChecked[s] = b.checked === false ? 0 : 1;
    v.bHealth[s] = b.checked === false ? Health.up : Health[b.health ?? 'unknown'];
  }
  // The backend-address index, in slot order so that a shared address resolves to the lowest slot.
  for (let s = 0; s < names.length; s++) if (names[s] !== '') put1(v.bipKeys, v.bipVals, v.bIp[s]!, s);
  h[IMG_CLUSTER] = spec.cluster ? 1 : 0;
  const arp = spec.arpVips ? new Set(spec.arpVips.map((a) => a | 0)) : null;
  spec.vips.forEach((ip, i) => { v.vipArp[i] = arp === null || arp.has(ip | 0) ? 1 : 0; });

  spec.services.forEach((svc, i) => {
    const vip = svc.vip | 0;
    let s = hash2(vip, svc.port, HASH_SEED) & svcMask;
    while (v.svcVals[s] !== 0 && !(v.svcKeyVip[s] === vip && v.svcKeyPort[s] === svc.port)) s = (s + 1) & svcMask;
    v.svcKeyVip[s] = vip; v.svcKeyPort[s] = svc.port; v.svcVals[s] = i + 1;
    const group = groupOf(svc.active).map(slotOf);
    [...group, ...svc.standby.map(slotOf)].forEach((b, j) => { v.svcOrder[i * d.stride + j] = b; });
    v.svcOnDown[i] = OnDown[svc.onBackendDown ?? 'reset'];
    fillPick(v, i, group.filter((b) => usableIn(v, b) && v.bWeight[b]! > 0));
  });
  return new TablesParts(new Uint8Array(mem), v, newSlots, { spec, backendNames: names });
}
