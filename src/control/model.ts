// What vipgate should be doing: the config file plus what was changed through the API (the
// overlay: registrations, per-backend overrides, switches), composed into one desired model and
// then into the tables the packet path reads. Pure functions over plain data: the controller
// calls them on a candidate before anything is changed, so a rejected change changes nothing.
//
// Member order in a service: priority, highest first (config services: the active 255, standbys
// 254, 253, ...; registrations choose, default 100); equal priorities keep their order (config
// first, then registrations in the order they came). The members sharing the top priority form
// the active group and share new flows by weight; a switch pins one member as the only active.

import type { Config } from './config';
import { unusableAddress } from './config';
import { ApiError, AdminState, ADMIN_STATES, RoleState, SET_STATES, PRIORITY, WEIGHT, LEASE, Source } from './api-types';
import type { TablesSpec } from '../tables/services';
import type { HealthCheck, ServiceFailover, SparePool } from './config/health';
import { FAILOVER_DEFAULTS } from './config/health';
import { ServiceInput, ServiceOrder, ServiceState, HealthStatus, stepServices } from './health/machine';
import { formatIpv4, formatMac, parseIpv4, parseMac } from '../wire/addr';

/** Most backends (config and registered) at once; the state keeps stats for MAX_BACKEND_SLOTS. */
export const MAX_BACKENDS = 1024;
/** Most services one registration may serve. */
export const MAX_SERVES = 64;
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const OVERLAY_VERSION = 1;

export interface ServeRef { vip: number; port: number }

/** A backend that registered itself through the API. */
export interface Registration {
  name: string;
  ip: number;
  mac: string | null;
  serves: ServeRef[];
  priority: number;
  weight: number;
  /** Seconds; 0 = never expires. */
  lease: number;
  /** Unregistered or lease expired: drains, removed once its flows end. */
  leaving: boolean;
}

/** Everything changed through the API: what the state file holds. */
export interface Overlay {
  version: number;
  generation: number;
  registrations: Registration[];
  overrides: Record<string, { state?: AdminState; weight?: number }>;
  /** Service key -> the member a switch made active. */
  pins: Record<string, string>;
}

export function emptyOverlay(): Overlay {
  return { version: OVERLAY_VERSION, generation: 0, registrations: [], overrides: {}, pins: {} };
}

export function cloneOverlay(o: Overlay): Overlay {
  return JSON.parse(JSON.stringify(o)) as Overlay;
}

export interface DBackend {
  name: string;
  ip: number;
  mac: Uint8Array | null;
  weight: number;
  state: AdminState;
  source: Source;
  leaving: boolean;
  lease: number;
  /** Its health check (config: its own or the default; registered: the default), or null: never checked. */
  check: HealthCheck | null;
}

export interface DMember { name: string; priority: number }

export interface DService {
  key: string;
  vip: number;
  port: number;
  source: Source;
  members: DMember[];
  pinned: string | null;
  /** Spare pool, preempt, hold-down, on_backend_down (registered services: the defaults). */
  failover: ServiceFailover;
}

export interface Desired {
  vips: Map<number, Source | 'nat_gateway'>;
  backends: Map<string, DBackend>;
  services: Map<string, DService>;
  /** Spare pools by name (config). */
  pools: Map<string, SparePool>;
}

/** A config backend removed by a reload while flows still use it: kept, draining, until they end. */
export interface Retiring { backend: DBackend; vips: number[] }

export function serviceKey(vip: number, port: number): string {
  return port ? `${formatIpv4(vip)}:${port}` : formatIpv4(vip);
}

/** "VIP" or "VIP:PORT" -> { vip, port } (port 0 = IP mode), or a message saying what is wrong. */
export function parseServiceKey(s: unknown): { vip: number; port: number } | string {
  if (typeof s !== 'string') return 'expected a string like "10.0.0.10:80" or "10.0.0.10"';
  const m = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(s);
  const vip = m ? parseIpv4(m[1]!) : null;
  if (!m || vip === null) return `${JSON.stringify(s).slice(0, 80)} is not VIP or VIP:PORT (like "10.0.0.10:80" or "10.0.0.10")`;
  const port = m[2] === undefined ? 0 : Number(m[2]);
  if (m[2] !== undefined && (port < 1 || port > 65535)) return `port ${m[2]} is out of range; use 1..65535 (or no port for every port of the VIP)`;
  const why = unusableAddress(vip);
  if (why) return `${formatIpv4(vip)} ${why}; a VIP must be a unicast address`;
  return { vip, port };
}

// ---------------------------------------------------------------------------------------------
// Request validation (the API's bodies). Each throws ApiError EAPI_INVALID naming the field.

function invalid(field: string, message: string): ApiError {
  return new ApiError('EAPI_INVALID', `${field}: ${message}`, field);
}

function asObject(body: unknown, allowed: readonly string[], example: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('EAPI_BAD_JSON', `the body must be a JSON object like ${example}`);
  }
  const o = body as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !allowed.includes(k));
  if (unknown.length) throw invalid(unknown[0]!, `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}; allowed: ${allowed.join(', ')}`);
  return o;
}

function intField(o: Record<string, unknown>, field: string, r: { min: number; max: number; default: number }, what: string): number {
  const v = o[field];
  if (v === undefined) return r.default;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(field, `expected a whole number ${r.min}..${r.max} (${what}), got ${describeValue(v)}`);
  if (v < r.min || v > r.max) throw invalid(field, `${v} is out of range; ${what} must be ${r.min}..${r.max}`);
  return v;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

export function checkName(v: unknown, field = 'name'): string {
  if (typeof v !== 'string' || !NAME_RE.test(v)) {
    throw invalid(field, `${describeValue(v)} is not a valid backend name; use 1-64 characters from A-Z a-z 0-9 _ . -`);
  }
  return v;
}

function checkUnicast(v: unknown, field: string, what: string): number {
  const ip = typeof v === 'string' ? parseIpv4(v) : null;
  if (ip === null) throw invalid(field, `${describeValue(v)} is not an IPv4 address; write ${what} as a dotted quad like 10.0.1.21`);
  const why = unusableAddress(ip);
  if (why) throw invalid(field, `${formatIpv4(ip)} ${why}; ${what} must be a unicast address`);
  return ip;
}

export const REGISTER_FIELDS = ['name', 'ip', 'mac', 'serves', 'priority', 'weight', 'lease'] as const;

/** Validate a registration body (RegisterRequest) into a Registration. `ourMac` may not be claimed. */
export function parseRegistration(body: unknown, ourMac: Uint8Array): Registration {
  const o = asObject(body, REGISTER_FIELDS, '{"name":"web1","ip":"10.0.1.21","serves":"10.0.0.10:80"}');
  if (o.name === undefined) throw invalid('name', 'missing; give the backend a name, e.g. "web1"');
  const name = checkName(o.name);
  if (o.ip === undefined) throw invalid('ip', 'missing; give the backend\'s own IPv4 address, e.g. "10.0.1.21"');
  const ip = checkUnicast(o.ip, 'ip', 'the backend\'s address');
  let mac: string | null = null;
  if (o.mac !== undefined && o.mac !== null) {
    const m = typeof o.mac === 'string' ? parseMac(o.mac) : null;
    if (!m) throw invalid('mac', `${describeValue(o.mac)} is not a MAC address; write six hex bytes like "02:00:00:00:01:21", or leave it out to resolve it by ARP`);
    if ((m[0]! & 1) === 1 || m.every((b) => b === 0)) throw invalid('mac', `${formatMac(m)} is not a unicast MAC; give the backend's NIC address`);
    if (m.every((b, i) => b === ourMac[i])) throw invalid('mac', `${formatMac(m)} is vipgate's own MAC; give the backend's NIC address`);
    mac = formatMac(m);
  }
  const priority = intField(o, 'priority', PRIORITY, 'priority, higher preferred');
  const weight = intField(o, 'weight', WEIGHT, 'weight, the share of new flows');
  const lease = intField(o, 'lease', LEASE, 'lease seconds, 0 = never expires');
  if (o.serves === undefined) throw invalid('serves', 'missing; say what it serves: "VIP" (every port) or "VIP:PORT", or a list of them');
  const list = typeof o.serves === 'string' ? [o.serves] : o.serves;
  if (!Array.isArray(list) || list.length === 0) throw invalid('serves', `expected "VIP", "VIP:PORT" or a non-empty list of them, got ${describeValue(o.serves)}`);
  if (list.length > MAX_SERVES) throw invalid('serves', `${list.length} entries; at most ${MAX_SERVES} per registration`);
  const serves: ServeRef[] = [];
  const seen = new Set<string>();
  list.forEach((s, i) => {
    const field = typeof o.serves === 'string' ? 'serves' : `serves[${i}]`;
    const k = parseServiceKey(s);
    if (typeof k === 'string') throw invalid(field, k);
    const key = serviceKey(k.vip, k.port);
    if (seen.has(key)) throw invalid(field, `${key} is listed twice`);
    seen.add(key);
    serves.push({ vip: k.vip, port: k.port });
  });
  return { name, ip, mac, serves, priority, weight, lease, leaving: false };
}

/** Same registration apart from liveness (leaving): a renewal. */
export function sameRegistration(a: Registration, b: Registration): boolean {
  const key = (r: Registration) => JSON.stringify([r.name, r.ip, r.mac, r.priority, r.weight, r.lease, r.serves.map((s) => serviceKey(s.vip, s.port)).sort()]);
  return key(a) === key(b);
}

export function parseSetBackend(body: unknown): { state?: AdminState | RoleState; weight?: number } {
  const o = asObject(body, ['state', 'weight'], '{"state":"drain"} or {"weight":50}');
  const out: { state?: AdminState | RoleState; weight?: number } = {};
  if (o.state !== undefined) {
    if (typeof o.state !== 'string' || !SET_STATES.includes(o.state as AdminState)) {
      throw invalid('state', `${describeValue(o.state)} is not a state; use up, drain (keep its flows, no new ones), down, active (take over its services) or standby (hand them to the next member)`);
    }
    out.state = o.state as AdminState | RoleState;
  }
  if (o.weight !== undefined) out.weight = intField(o, 'weight', WEIGHT, 'weight, the share of new flows');
  if (out.state === undefined && out.weight === undefined) throw invalid('state', 'nothing to change; give state (up, drain, down) and/or weight (0..1000)');
  return out;
}

export function parseSwitch(body: unknown): string | null {
  const o = asObject(body, ['backend'], '{"backend":"web2"}');
  if (o.backend === undefined) throw invalid('backend', 'missing; name the member to make active, or null to return to priority order');
  if (o.backend === null) return null;
  return checkName(o.backend, 'backend');
}

/** The state file's form: registrations written as the requests that made them (readable, and checked by the same parser). */
export function storedOverlay(o: Overlay): unknown {
  return {
    version: o.version,
    generation: o.generation,
    registrations: o.registrations.map((r) => ({
      name: r.name, ip: formatIpv4(r.ip), mac: r.mac, serves: r.serves.map((s) => serviceKey(s.vip, s.port)),
      priority: r.priority, weight: r.weight, lease: r.lease, leaving: r.leaving,
    })),
    overrides: o.overrides,
    pins: o.pins,
  };
}

/** Validate a state file's content (it may have been edited by hand). Throws Error with what is wrong. */
export function checkOverlay(v: unknown): Overlay {
  const fail = (m: string): never => { throw new Error(m); };
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(v)) return fail('not a JSON object');
  if (v.version !== OVERLAY_VERSION) fail(`version ${JSON.stringify(v.version)} is not ${OVERLAY_VERSION}`);
  if (typeof v.generation !== 'number' || !Number.isInteger(v.generation) || v.generation < 0) fail('generation is not a whole number');
  if (!Array.isArray(v.registrations)) fail('registrations is not a list');
  if (!isObj(v.overrides)) fail('overrides is not an object');
  if (!isObj(v.pins)) fail('pins is not an object');
  const regs: Registration[] = [];
  const names = new Set<string>();
  (v.registrations as unknown[]).forEach((r, i) => {
    try {
      if (!isObj(r)) return fail('not an object');
      const { leaving, ...req } = r;
      if (typeof leaving !== 'boolean') fail('leaving is not true or false');
      const reg = parseRegistration(req, new Uint8Array(6));
      reg.leaving = leaving as boolean;
      if (names.has(reg.name)) fail(`${reg.name} is registered twice`);
      names.add(reg.name);
      regs.push(reg);
    } catch (e) {
      fail(`registrations[${i}]: ${(e as Error).message}`);
    }
  });
  const overrides: Overlay['overrides'] = {};
  for (const [k, ov] of Object.entries(v.overrides as Record<string, unknown>)) {
    try {
      checkName(k);
      const x = parseSetBackend(ov);
      if (x.state !== undefined && !ADMIN_STATES.includes(x.state as AdminState)) fail(`state ${x.state} is not up, drain or down`);
      overrides[k] = x as Overlay['overrides'][string];
    } catch (e) { fail(`overrides.${k}: ${(e as Error).message}`); }
  }
  const pins: Record<string, string> = {};
  for (const [k, name] of Object.entries(v.pins as Record<string, unknown>)) {
    const sk = parseServiceKey(k);
    if (typeof sk === 'string') fail(`pins: ${sk}`);
    try { pins[k] = checkName(name); } catch (e) { fail(`pins.${k}: ${(e as Error).message}`); }
  }
  return { version: OVERLAY_VERSION, generation: v.generation as number, registrations: regs, overrides, pins };
}

// ---------------------------------------------------------------------------------------------
// Composition

/** Config + overlay (+ backends retiring after a reload) -> the desired model. Throws ApiError on a conflict. */
export function compose(c: Config, o: Overlay, retiring: ReadonlyMap<string, Retiring> = new Map()): Desired {
  const vips = new Map<number, Source | 'nat_gateway'>();
  for (const v of c.vips) vips.set(v, 'config');
  if (c.natGateway !== null) vips.set(c.natGateway, 'nat_gateway');
  const backends = new Map<string, DBackend>();
  const ipOwner = new Map<number, string>();
  for (const b of c.backends) {
    backends.set(b.name, { name: b.name, ip: b.ip, mac: b.mac, weight: b.weight, state: 'up', source: 'config', leaving: false, lease: 0, check: b.health });
    ipOwner.set(b.ip, b.name);
  }
  const services = new Map<string, DService>();
  for (const s of c.services) {
    const key = serviceKey(s.vip, s.port);
    services.set(key, {
      key, vip: s.vip, port: s.port, source: 'config', pinned: null, failover: s.failover,
      members: [{ name: s.active, priority: PRIORITY.max }, ...s.standby.map((n, j) => ({ name: n, priority: Math.max(PRIORITY.min, PRIORITY.max - 1 - j) }))],
    });
  }
  for (const r of o.registrations) {
    const ipText = formatIpv4(r.ip);
    if (backends.has(r.name)) {
      throw new ApiError('EAPI_CONFIG_OWNED', `backend ${r.name} is defined in the config file ${c.file}; register under another name, or change it in the file and reload`, 'name');
    }
    const owner = ipOwner.get(r.ip);
    if (owner !== undefined) throw new ApiError('EAPI_CONFLICT', `${ipText} is already the address of backend ${owner}; each backend needs its own IP`, 'ip');
    // A config backend a reload removed keeps its name and address while its flows drain: taking
    // either over would hand those flows to the newcomer (same slot) or cut them.
    for (const [rn, rt] of retiring) {
      if (rn === r.name || rt.backend.ip === r.ip) {
        throw new ApiError('EAPI_CONFLICT', `backend ${rn} (${formatIpv4(rt.backend.ip)}) was removed from the config and is draining its flows; wait until it is gone from vipgate backends, or use another ${rn === r.name ? 'name' : 'IP'}`, rn === r.name ? 'name' : 'ip');
      }
    }
    if (vips.has(r.ip)) throw new ApiError('EAPI_CONFLICT', `${ipText} is a VIP (${vips.get(r.ip)}); a backend needs its own real address`, 'ip');
    backends.set(r.name, { name: r.name, ip: r.ip, mac: r.mac === null ? null : parseMac(r.mac), weight: r.weight, state: r.leaving ? 'drain' : 'up', source: 'api', leaving: r.leaving, lease: r.lease, check: c.health });
    ipOwner.set(r.ip, r.name);
  }
  // VIPs and memberships after every backend address is known, so a VIP can be checked against all of them.
  o.registrations.forEach((r, ri) => {
    for (const sv of r.serves) {
      const key = serviceKey(sv.vip, sv.port);
      const owner = ipOwner.get(sv.vip);
      if (owner !== undefined) {
        // Two registrations clash (one's address is the other's VIP): blame the later one, the
        // request being made (register appends), so the error names the field to fix.
        if (o.registrations.findIndex((x) => x.name === owner) > ri) {
          throw new ApiError('EAPI_CONFLICT', `${formatIpv4(sv.vip)} is a VIP (api, served by backend ${r.name}); a backend needs its own real address`, 'ip');
        }
        throw new ApiError('EAPI_CONFLICT', `${formatIpv4(sv.vip)} is the address of backend ${owner}, not a VIP`, 'serves');
      }
      const src = vips.get(sv.vip);
      if (src === 'nat_gateway') throw new ApiError('EAPI_CONFLICT', `${formatIpv4(sv.vip)} is the nat gateway address, not a VIP`, 'serves');
      if (src === undefined) vips.set(sv.vip, 'api');
      if (r.leaving) continue; // keeps its VIP while draining; takes no new flows
      let svc = services.get(key);
      if (!svc) { svc = { key, vip: sv.vip, port: sv.port, source: 'api', members: [], pinned: null, failover: FAILOVER_DEFAULTS }; services.set(key, svc); }
      svc.members.push({ name: r.name, priority: r.priority });
    }
  });
  for (const [name, rt] of retiring) {
    if (backends.has(name) || ipOwner.has(rt.backend.ip)) continue;
    backends.set(name, { ...rt.backend, state: 'drain', leaving: true });
    ipOwner.set(rt.backend.ip, name);
    for (const v of rt.vips) if (!vips.has(v)) vips.set(v, 'config');
  }
  for (const [name, ov] of Object.entries(o.overrides)) {
    const b = backends.get(name);
    if (!b) continue; // stale (its backend left the config): dropped by the controller
    if (ov.state !== undefined && !b.leaving) b.state = ov.state;
    if (ov.weight !== undefined) b.weight = ov.weight;
  }
  for (const svc of services.values()) {
    // Stable sort: equal priorities keep config-then-registration order.
    svc.members.sort((a, b) => b.priority - a.priority);
  }
  for (const [key, name] of Object.entries(o.pins)) {
    const svc = services.get(key);
    if (svc && svc.members.some((m) => m.name === name)) svc.pinned = name;
  }
  if (backends.size > MAX_BACKENDS) throw new ApiError('EAPI_CONFLICT', `that would make ${backends.size} backends; vipgate holds at most ${MAX_BACKENDS}`);
  return { vips, backends, services, pools: new Map(c.spares.map((p) => [p.name, p])) };
}

/** The active group and the standbys of a service, in order. */
export function serviceOrder(s: DService): { active: string[]; standby: string[] } {
  if (s.members.length === 0) return { active: [], standby: [] };
  if (s.pinned !== null) return { active: [s.pinned], standby: s.members.map((m) => m.name).filter((n) => n !== s.pinned) };
  const top = s.members[0]!.priority;
  return { active: s.members.filter((m) => m.priority === top).map((m) => m.name), standby: s.members.filter((m) => m.priority !== top).map((m) => m.name) };
}

/** The services with members, as inputs of the failover machine (health/machine.ts). */
export function serviceInputs(d: Desired): ServiceInput[] {
  return [...d.services.values()].filter((s) => s.members.length > 0).map((s) => ({
    key: s.key, ...serviceOrder(s), pinned: s.pinned !== null,
    pool: s.failover.spares === null ? null : d.pools.get(s.failover.spares) ?? null,
    preempt: s.failover.preempt, holdDownMs: s.failover.holdDownMs,
  }));
}

/** Operational state beside the desired model: health per backend and the failover machine's state per service. */
export interface Operational {
  /** A backend's health: on `port` where it is checked per port (a port-mode service's), else over all its checks. */
  health(name: string, port?: number): HealthStatus;
  services: ReadonlyMap<string, ServiceState>;
}

/** No checks have run (a fresh start, a replay): every health unknown, no failover yet. */
export const NO_OPERATIONAL: Operational = { health: () => 'unknown', services: new Map() };

/**
 * The one way from the desired model (+ operational health) to the tables: the failover machine
 * orders each service's members (active group, standbys, spares), and health goes beside the
 * admin state. `vipgate run` (the controller) and `vipgate replay` both come through here.
 */
export function toSpec(d: Desired, mac: Uint8Array, mode: 'dsr' | 'nat', op: Operational = NO_OPERATIONAL, now = 0,
  extra: Pick<TablesSpec, 'synCheck' | 'icmp'> = {}): { spec: TablesSpec; step: ReturnType<typeof stepServices> } {
  const port = new Map([...d.services.values()].map((s) => [s.key, s.port || undefined]));
  const usable = (n: string, key: string) => d.backends.get(n)?.state === 'up' && op.health(n, port.get(key)) !== 'down';
  const step = stepServices(op.services, serviceInputs(d), (n, svc) => usable(n, svc.key), now);
  // A member down on this service's port (checked per port) but not everywhere keeps its slot and
  // its other services; it leaves this service's order, so the packet path skips it here.
  const order = (s: DService): ServiceOrder => {
    const o = step.orders.get(s.key)!;
    const keep = (n: string) => !(d.backends.get(n)?.state === 'up' && op.health(n) !== 'down' && !usable(n, s.key));
    return { active: o.active.filter(keep), standby: o.standby.filter(keep) };
  };
  const spec: TablesSpec = {
    mac,
    mode,
    vips: [...d.vips.keys()],
    backends: [...d.backends.values()].map((b) => ({
      name: b.name, ip: b.ip, mac: b.mac, state: b.state, weight: b.weight,
      checked: b.check !== null, health: b.check === null ? 'up' as const : op.health(b.name),
    })),
    services: [...d.services.values()].filter((s) => s.members.length > 0).map((s) => ({
      vip: s.vip, port: s.port, ...order(s), onBackendDown: s.failover.onBackendDown,
    })),
    synCheck: extra.synCheck ?? null,
    ...(extra.icmp ? { icmp: extra.icmp } : {}),
  };
  return { spec, step };
}

/** The tables of a config alone (no API changes, no checks yet): what a fresh `vipgate run` publishes, and what `vipgate replay` uses. */
export function configSpec(c: Config, mac: Uint8Array): TablesSpec {
  return toSpec(compose(c, emptyOverlay()), mac, c.mode, NO_OPERATIONAL, 0, { synCheck: c.synCheck, icmp: c.icmp }).spec;
}

/**
 * The ports a backend's check probes: its check's own port, else each port of the port-mode
 * services it serves (as a member, or as a spare of their pool), else 80.
 */
export function checkPorts(d: Desired, name: string): number[] {
  const b = d.backends.get(name);
  if (b?.check?.port) return [b.check.port];
  const ports = new Set<number>();
  for (const s of d.services.values()) {
    if (!s.port) continue;
    if (s.members.some((m) => m.name === name) || (s.failover.spares !== null && d.pools.get(s.failover.spares)?.members.includes(name))) ports.add(s.port);
  }
  return ports.size ? [...ports].sort((x, y) => x - y) : [80];
}
