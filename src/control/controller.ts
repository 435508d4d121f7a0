// The control plane's one writer: every change (API call, config reload, lease expiry, a
// drained backend leaving) goes through apply(), which
//   1. builds the candidate overlay and composes it with the config (a conflict throws: nothing changed),
//   2. builds the new tables off the packet path (stable backend slots),
//   3. persists the overlay atomically (a write failure throws: nothing changed),
//   4. publishes the tables with one reference swap between packets, and reports what changed.
// Existing flows keep their backend slot, so a change never breaks them: a removed or
// unregistered backend drains (stays in the tables, no new flows) until its last flow ends.
// Time is a parameter (clock), so leases and draining are testable without waiting.

import type { Config } from './config';
import { loadConfig } from './config';
import { VipgateError } from './errors';
import {
  ApiError, AdminState, BackendView, EventQuery, ControlApi, FlowPage, FlowQuery, FlowView, MemberView, NeighbourView,
  ReloadResult, ServiceView, StatusView, VipView, WorkerView, SharedStateView,
} from './api-types';
import {
  Overlay, Registration, Desired, DBackend, DService, Retiring, emptyOverlay, cloneOverlay, compose, toSpec, serviceOrder, serviceKey,
  parseServiceKey, parseRegistration, sameRegistration, parseSetBackend, parseSwitch, checkName, checkOverlay, storedOverlay, checkPorts,
} from './model';
import type { ServiceState, ServicesStep } from './health/machine';
import type { HealthManager, HealthView } from './health/manager';
import { EventLog, EventPage } from './health/events';
import type { CheckType } from './config/health';
import { writeFileAtomic, readJsonFile } from './store';
import { Tables } from '../tables/services';
import { tablesFit } from '../shm/banks';
import type { StateViews } from '../dataplane/state';
import type { FlowTable } from '../dataplane/flows';
import type { NeighbourTable } from '../dataplane/neighbours';
import { snapshotCounters, CounterSnapshot } from '../dataplane/counters';
import { FLOW_STATE_NAMES } from '../dataplane/flows';
import { formatIpv4, formatMac, parseIpv4 } from '../wire/addr';

export interface ControlLog { (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void }

export interface Applied {
  tables: Tables;
  vipsAdded: number[];
  vipsRemoved: number[];
  /** The backend addresses changed (nat: the kernel filter and capture need them). */
  backendIpsChanged: boolean;
}

/**
 * What the controller needs of the packet side, and nothing more: the state it reads (counters,
 * flows, neighbours, per-backend figures) and where it publishes tables. One process (replay,
 * tests): the Dataplane itself (dataplanePort). The supervisor: the shared region's views, and
 * publish into the table banks the packet worker polls.
 */
export interface ControlPort {
  readonly state: StateViews;
  readonly flows: FlowTable;
  readonly neighbours: NeighbourTable;
  /** The tables published last (their slot assignment is the base of the next); null before the first publish. */
  readonly tables: Tables | null;
  /**
   * Before the first publish: the backend names by slot of the tables a previous process
   * published on this state (a whole restart or upgrade), so every backend keeps its slot and the
   * flows that name it keep going to it.
   */
  readonly slots?: readonly string[];
  /** Make `t` the packet path's tables; throws (nothing changed) when they cannot be published. */
  publish(t: Tables): void;
}

/** Runtime facts the controller reports but does not own (the packet worker, the shared region). */
export interface RuntimeStatus { worker: WorkerView | null; sharedState: SharedStateView | null }

export interface ControllerOptions {
  config: Config;
  port: ControlPort;
  /** The packet worker and shared region for status (supervisor); absent: one process, both null. */
  runtime?: () => RuntimeStatus;
  /** The MAC vipgate answers with (the config's, else the NIC's). */
  mac: Uint8Array;
  stateFile: string | null;
  version?: string;
  iface?: string | null;
  clock?: () => number;
  log?: ControlLog;
  /** Called after each published change (announce new VIPs, update filters, resolve backends). */
  onApplied?: (a: Applied) => void;
  /** The health checker: its results steer new flows (republished without persisting). */
  health?: HealthManager;
  /** Where failover, fail-back and switch events go (else a log of its own, from the config's events:). */
  events?: EventLog;
}

const FLOW_PAGE_MAX = 1000;
/** Slots a flow listing scans per request at most (bounds the pause it causes). */
const FLOW_SCAN_BUDGET = 1 << 20;

export class Controller implements ControlApi {
  private config: Config;
  private overlay: Overlay;
  private desired: Desired;
  private readonly retiring = new Map<string, Retiring>();
  private readonly leaseUntil = new Map<string, number>();
  private readonly transitionCounts = new Map<string, number>();
  private readonly reloadCounts = { ok: 0, failed: 0 };
  /** The message of the periodic apply that keeps failing (a state file that cannot be written), or null. */
  private tickFailing: string | null = null;
  private readonly clock: () => number;
  private readonly log: ControlLog;
  private readonly started: number;
  /** Warnings from restoring the state file (entries that no longer fit the config). */
  readonly restoreWarnings: string[] = [];
  /** The failover machine's state per service (operational: never persisted). */
  private svcStates: ReadonlyMap<string, ServiceState> = new Map();
  /** The step of the tables built last, committed once they are published. */
  /** When a pending fail-back (hold-down) is due: step the services again then. */
  private nextFailbackAt: number | null = null;
  /** Cluster (issue 11): the VIPs this node answers ARP for (null: all) and whether the cluster is on. Operational. */
  private ownership: { arpVips: number[] | null; cluster: boolean } = { arpVips: null, cluster: false };

  readonly eventLog: EventLog;

  constructor(private readonly o: ControllerOptions) {
    this.config = o.config;
    this.clock = o.clock ?? Date.now;
    this.log = o.log ?? (() => {});
    this.eventLog = o.events ?? new EventLog({ config: o.config.events, log: this.log, clock: this.clock });
    this.started = this.clock();
    this.overlay = this.restore();
    this.desired = compose(this.config, this.overlay, this.retiring);
    const now = this.clock();
    for (const r of this.overlay.registrations) if (r.lease > 0 && !r.leaving) this.leaseUntil.set(r.name, now + r.lease * 1000);
    const { tables, step } = this.build(this.desired, now);
    this.o.port.publish(tables);
    this.commitOperational(step, now);
    this.retarget(now);
    this.o.health?.listen({
      transition: (_name, _t, at) => this.refreshOperational(at),
      ok: (name, at) => {
        const slot = this.tables.backendSlot(name);
        if (slot >= 0) this.o.port.state.bHealthOkAt[slot] = at;
      },
    });
  }

  get tables(): Tables { return this.o.port.tables!; }
  get generation(): number { return this.overlay.generation; }
  /** The cluster's VIP placements as of the last reload (issue 11: they may change on reload). */
  vipPlacement(): Config['vipPlacement'] { return this.config.vipPlacement; }

  // ---- start-up ----

  /** The overlay from the state file, minus entries that conflict with the config (each one a warning). */
  private restore(): Overlay {
    const file = this.o.stateFile;
    if (!file) return emptyOverlay();
    const raw = readJsonFile(file);
    if (raw === null) return emptyOverlay();
    let ov: Overlay;
    try {
      ov = checkOverlay(raw);
    } catch (e) {
      throw new VipgateError('ESTATE_INVALID', `the state file ${file} is not a vipgate state: ${(e as Error).message}; fix it, or move it aside to start from the config alone`);
    }
    // Drop what no longer fits (the config changed while vipgate was stopped), one entry at a time.
    for (let guard = 0; guard <= ov.registrations.length + 1; guard++) {
      try {
        compose(this.config, ov);
        break;
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        const bad = ov.registrations.find((r) => { try { compose(this.config, { ...ov, registrations: [r] }); return false; } catch { return true; } })
          ?? ov.registrations[ov.registrations.length - 1];
        if (!bad) throw e;
        this.restoreWarnings.push(`registration ${bad.name} from ${file} is dropped: ${e.message}`);
        ov.registrations = ov.registrations.filter((r) => r !== bad);
      }
    }
    this.pruneStale(ov, compose(this.config, ov));
    return ov;
  }

  // ---- the one way to change anything ----

  private build(d: Desired, now: number = this.clock(), config: Config = this.config): { tables: Tables; step: ServicesStep } {
    const st = this.o.port.state;
    const prev = this.o.port.tables ?? (this.o.port.slots ? { backendNames: this.o.port.slots, hasMeta: true } : undefined);
    const health = this.o.health;
    try {
      const { spec, step } = toSpec(d, this.o.mac, config.mode,
        { health: (n, port) => health?.status(n, port) ?? 'unknown', services: this.svcStates }, now, { synCheck: config.synCheck, icmp: config.icmp });
      // Without a cluster the spec is the config's alone (replay and run build the same tables).
      const own = this.ownership;
      const full = own.cluster || own.arpVips !== null ? { ...spec, arpVips: own.arpVips, cluster: own.cluster } : spec;
      const tables = new Tables(full, prev, (slot) => st.bFlows[slot]! > 0);
      // What a packet worker could not read from a bank is refused here, before anything changes.
      const fit = tablesFit(tables);
      if (!fit.ok) throw new Error(fit.why);
      return { tables, step };
    } catch (e) {
      throw new ApiError('EAPI_CONFLICT', `cannot build the tables: ${(e as Error).message}`);
    }
  }

  /** Overrides and pins naming backends or services that no longer exist are dropped. */
  private pruneStale(ov: Overlay, d: Desired): void {
    for (const name of Object.keys(ov.overrides)) if (!d.backends.has(name)) delete ov.overrides[name];
    for (const [key, name] of Object.entries(ov.pins)) {
      const svc = d.services.get(key);
      if (!svc || !svc.members.some((m) => m.name === name)) delete ov.pins[key];
    }
  }

  /**
   * Make `candidate` (and `config`) current: compose, build, persist, publish. Throws ApiError
   * (or VipgateError) with nothing changed.
   */
  private apply(candidate: Overlay, reason: string, config: Config = this.config): Desired {
    const d = compose(config, candidate, this.retiring);
    this.pruneStale(candidate, d);
    const now = this.clock();
    const { tables, step } = this.build(d, now, config);
    candidate.generation = this.overlay.generation + 1;
    if (this.o.stateFile) {
      try {
        writeFileAtomic(this.o.stateFile, JSON.stringify(storedOverlay(candidate), null, 1) + '\n');
      } catch (e) {
        throw new ApiError('EAPI_STATE_WRITE', `could not save the change to ${this.o.stateFile} (${(e as Error).message}); nothing was changed: fix the disk or permissions and retry`);
      }
    }
    // Committed: from here on nothing can fail.
    const before = this.desired;
    this.overlay = candidate;
    this.config = config;
    this.desired = d;
    this.publishTables(tables);
    this.commitOperational(step, now);
    this.retarget(now);
    this.countTransitions(before, d);
    const vipsAdded = [...d.vips.keys()].filter((v) => !before.vips.has(v));
    const vipsRemoved = [...before.vips.keys()].filter((v) => !d.vips.has(v));
    const ips = (x: Desired) => [...x.backends.values()].map((b) => b.ip).sort().join(',');
    try {
      this.o.onApplied?.({ tables, vipsAdded, vipsRemoved, backendIpsChanged: ips(before) !== ips(d) });
    } catch (e) {
      // The change is committed and published; a failing follow-up (announce, filter) is logged, not undone.
      this.log('error', `after ${reason}: ${(e as Error).message}`, { event: 'apply_hook_failed' });
    }
    return d;
  }

  private publishTables(tables: Tables): void {
    const st = this.o.port.state;
    for (const s of tables.newSlots) { st.bConns[s] = 0; st.bHealthOkAt[s] = 0; }
    this.o.port.publish(tables);
  }

  /** The tables just published are current: keep the failover state and report its transitions. */
  private commitOperational(step: ServicesStep, now: number): void {
    this.svcStates = step.states;
    this.nextFailbackAt = step.nextAt;
    for (const t of step.transitions) {
      const { type, ...fields } = t;
      this.eventLog.emit(type, { ...fields, ...(t.at !== undefined ? { at: new Date(t.at).toISOString() } : {}) }, now);
    }
  }

  /** The desired model changed: check what it now holds (a health change alone changes no target). */
  private retarget(now: number): void {
    this.o.health?.setTargets([...this.desired.backends.values()].map((b) => ({
      name: b.name, ip: b.ip, check: b.leaving ? null : b.check, ports: checkPorts(this.desired, b.name),
    })), now);
  }

  /**
   * Health changed (or a hold-down ended): rebuild the tables from the same desired model and
   * publish them. Operational state only: the overlay, its generation and the state file are
   * not touched.
   */
  refreshOperational(now: number = this.clock()): void {
    try {
      const { tables, step } = this.build(this.desired, now);
      this.publishTables(tables);
      this.commitOperational(step, now);
    } catch (e) {
      this.log('error', `could not republish the tables after a health change: ${(e as Error).message}`, { event: 'health_publish_failed' });
    }
  }

  /**
   * Cluster (issue 11): which VIPs (and nat gateway) this node answers ARP for (null: all) and
   * whether the packet path journals flows and adopts unknown ones. Operational like health: no
   * state-file write, no generation bump; the tables are rebuilt and published only when this
   * changes anything. The cluster runtime calls it on every ownership decision.
   */
  setOwnership(o: { arpVips: number[] | null; cluster: boolean }, now: number = this.clock()): void {
    const norm = (a: number[] | null) => a === null ? null : [...new Set(a.map((x) => x | 0))].sort((x, y) => x - y);
    const next = { arpVips: norm(o.arpVips), cluster: o.cluster };
    const same = next.cluster === this.ownership.cluster && JSON.stringify(next.arpVips) === JSON.stringify(this.ownership.arpVips);
    if (same) return;
    const before = this.ownership;
    this.ownership = next;
    try {
      const { tables, step } = this.build(this.desired, now);
      this.publishTables(tables);
      this.commitOperational(step, now);
    } catch (e) {
      this.ownership = before;
      throw e;
    }
  }

  /** Call often (with the health checker's tick): steps the failover machine when a hold-down ends. */
  healthTick(now: number = this.clock()): void {
    if (this.nextFailbackAt !== null && now >= this.nextFailbackAt) this.refreshOperational(now);
  }

  private countTransitions(before: Desired, after: Desired): void {
    const bump = (name: string, to: string) => {
      const k = `${name}\u0000${to}`;
      this.transitionCounts.set(k, (this.transitionCounts.get(k) ?? 0) + 1);
    };
    for (const [name, b] of after.backends) {
      const old = before.backends.get(name);
      if (!old) { this.log('info', `backend ${name} added`, { event: 'backend_added', backend: name, ip: formatIpv4(b.ip), state: b.state }); bump(name, b.state); }
      else if (old.state !== b.state) { this.log('info', `backend ${name} ${old.state} -> ${b.state}`, { event: 'backend_state', backend: name, from: old.state, to: b.state }); bump(name, b.state); }
    }
    for (const name of before.backends.keys()) {
      if (!after.backends.has(name)) { this.log('info', `backend ${name} removed`, { event: 'backend_removed', backend: name }); bump(name, 'removed'); }
    }
  }

  // ---- periodic work (call about once a second) ----

  /** Expire leases; remove leaving backends whose flows have ended. */
  tick(now: number = this.clock()): void {
    const st = this.o.port.state;
    const slotFlows = (name: string) => { const s = this.tables.backendSlot(name); return s < 0 ? 0 : st.bFlows[s]!; };
    const c = cloneOverlay(this.overlay);
    let changed = '';
    const expired: string[] = [];
    for (const r of c.registrations) {
      if (!r.leaving && r.lease > 0 && now > (this.leaseUntil.get(r.name) ?? Infinity)) {
        r.leaving = true;
        expired.push(r.name);
        // Once, though a failing apply retries it every tick.
        if (this.tickFailing === null) this.log('warn', `backend ${r.name}: lease of ${r.lease}s expired without renewal; draining it`, { event: 'lease_expired', backend: r.name });
        changed = 'lease expired';
      }
    }
    const gone = c.registrations.filter((r) => r.leaving && slotFlows(r.name) <= 0);
    if (gone.length) {
      c.registrations = c.registrations.filter((r) => !gone.includes(r));
      changed = changed || 'drained';
    }
    const retired = [...this.retiring.keys()].filter((n) => slotFlows(n) <= 0);
    if (changed || retired.length) {
      // Lease timers and retiring entries go only once the change is applied: a failed apply
      // (state write) must leave them for the retry on the next tick.
      const retiringBefore = new Map(this.retiring);
      for (const n of retired) this.retiring.delete(n);
      try {
        this.apply(c, changed || 'retired');
        for (const n of expired) this.leaseUntil.delete(n);
        if (this.tickFailing !== null) this.log('info', `periodic changes apply again (${changed || 'retired'})`, { event: 'tick_recovered' });
        this.tickFailing = null;
      } catch (e) {
        this.restoreRetiring(retiringBefore);
        // Logged when it starts failing (or fails differently), not every second it goes on failing.
        const msg = `could not apply periodic change (${changed || 'retired'}): ${(e as Error).message}; retrying every tick`;
        if (msg !== this.tickFailing) this.log('error', msg, { event: 'tick_failed' });
        this.tickFailing = msg;
      }
    }
  }

  private restoreRetiring(saved: ReadonlyMap<string, Retiring>): void {
    this.retiring.clear();
    for (const [k, v] of saved) this.retiring.set(k, v);
  }

  // ---- mutations (ControlApi) ----

  register(body: unknown): { backend: BackendView; created: boolean } {
    const reg = parseRegistration(body, this.o.mac);
    const c = cloneOverlay(this.overlay);
    const i = c.registrations.findIndex((r) => r.name === reg.name);
    const old = i >= 0 ? c.registrations[i]! : null;
    if (old && !old.leaving && !sameRegistration(old, reg)) {
      throw new ApiError('EAPI_EXISTS',
        `backend ${reg.name} is already registered with ip ${formatIpv4(old.ip)} serving ${old.serves.map((s) => serviceKey(s.vip, s.port)).join(', ')}` +
        ` (priority ${old.priority}, weight ${old.weight}, lease ${old.lease}s); unregister it first (vipgate unregister ${reg.name}) or use another name`, 'name');
    }
    const now = this.clock();
    if (old && !old.leaving) {
      // A renewal: the same registration again. Only the lease moves; nothing to persist.
      if (reg.lease > 0) this.leaseUntil.set(reg.name, now + reg.lease * 1000);
      return { backend: this.backend(reg.name), created: false };
    }
    // New, or coming back while it was still draining (a restarted server): replaces it.
    if (i >= 0) c.registrations[i] = reg; else c.registrations.push(reg);
    this.apply(c, `register ${reg.name}`);
    if (reg.lease > 0) this.leaseUntil.set(reg.name, now + reg.lease * 1000); else this.leaseUntil.delete(reg.name);
    return { backend: this.backend(reg.name), created: old === null };
  }

  unregister(name: string, force: boolean): BackendView {
    checkName(name);
    const b = this.desired.backends.get(name);
    if (!b) throw this.unknownBackend(name);
    if (b.source === 'config' && !b.leaving) {
      throw new ApiError('EAPI_CONFIG_OWNED', `backend ${name} is defined in the config file ${this.config.file}; to take it out of service use vipgate set ${name} --state drain, or remove it from the file and reload`);
    }
    const view = this.backend(name);
    const c = cloneOverlay(this.overlay);
    const r = c.registrations.find((x) => x.name === name);
    const retiringBefore = new Map(this.retiring);
    if (force || view.flows <= 0) {
      c.registrations = c.registrations.filter((x) => x.name !== name);
      this.retiring.delete(name);
      delete c.overrides[name];
    } else if (r) {
      if (r.leaving) return view; // already draining: idempotent
      r.leaving = true;
    } else {
      return view; // a retiring config backend: already draining
    }
    try {
      this.apply(c, `unregister ${name}${force ? ' (forced)' : ''}`);
    } catch (e) {
      this.restoreRetiring(retiringBefore); // rejected: nothing changed, the lease keeps running
      throw e;
    }
    this.leaseUntil.delete(name);
    return this.desired.backends.has(name) ? this.backend(name) : { ...view, state: 'drain', leaving: true, serves: [] };
  }

  setBackend(name: string, body: unknown): BackendView {
    checkName(name);
    const req = parseSetBackend(body);
    const b = this.desired.backends.get(name);
    if (!b) throw this.unknownBackend(name);
    if (b.leaving) throw new ApiError('EAPI_CONFLICT', `backend ${name} is leaving (unregistered, draining its last flows); register it again to change it`);
    const c = cloneOverlay(this.overlay);
    const ov = { ...c.overrides[name] };
    if (req.weight !== undefined) ov.weight = req.weight;
    const member = [...this.desired.services.values()].filter((s) => s.members.some((m) => m.name === name));
    if (req.state === 'active') {
      // The take-over command for every service it serves: up, and pinned as the active member.
      if (!member.length) throw new ApiError('EAPI_CONFLICT', `backend ${name} serves no service; register it for one (or add it to a service in the config) first`, 'state');
      ov.state = 'up';
      for (const s of member) c.pins[s.key] = name;
    } else if (req.state === 'standby') {
      // Step back: each service it is serving now is switched to the next up member in order.
      const roles = this.roles();
      for (const s of member.filter((x) => roles.get(x.key)?.has(name))) {
        const o = serviceOrder(s);
        const next = [...o.active, ...o.standby].find((n) => n !== name && this.desired.backends.get(n)!.state === 'up');
        if (next === undefined) throw new ApiError('EAPI_CONFLICT', `no other member of ${s.key} is up to take over from ${name}; bring one up first, or use drain`, 'state');
        c.pins[s.key] = next;
      }
    } else if (req.state !== undefined) {
      ov.state = req.state;
    }
    c.overrides[name] = ov;
    const pinsBefore = this.overlay.pins;
    this.apply(c, `set ${name}`);
    for (const [k, n] of Object.entries(c.pins)) {
      if (pinsBefore[k] !== n) this.eventLog.emit('switch', { service: k, to: n, by: `set ${name} --state ${req.state}` });
    }
    return this.backend(name);
  }

  switchService(service: string, body: unknown): ServiceView {
    const k = parseServiceKey(service);
    if (typeof k === 'string') throw new ApiError('EAPI_INVALID', `service: ${k}`, 'service');
    const key = serviceKey(k.vip, k.port);
    const name = parseSwitch(body);
    const svc = this.desired.services.get(key);
    if (!svc || svc.members.length === 0) throw this.unknownService(key);
    const c = cloneOverlay(this.overlay);
    if (name === null) {
      delete c.pins[key];
    } else {
      if (!this.desired.backends.has(name)) throw this.unknownBackend(name);
      if (!svc.members.some((m) => m.name === name)) {
        throw new ApiError('EAPI_CONFLICT', `${name} is not a member of ${key}; its members are ${svc.members.map((m) => m.name).join(', ')}`, 'backend');
      }
      const state = this.desired.backends.get(name)!.state;
      if (state !== 'up') throw new ApiError('EAPI_CONFLICT', `${name} is ${state}; set it up first (vipgate set ${name} --state up), then switch`, 'backend');
      c.pins[key] = name;
    }
    this.apply(c, `switch ${key} to ${name ?? 'priority order'}`);
    this.eventLog.emit('switch', { service: key, to: name, by: 'vipgate switch' });
    return this.serviceView(this.desired.services.get(key)!);
  }

  reload(): ReloadResult {
    let next: Config;
    try {
      next = loadConfig(this.config.file, { requireMac: this.config.mac !== null });
      const fixed: Array<[string, unknown, unknown]> = [
        ['interface', this.config.interface, next.interface], ['mac', this.config.macText, next.macText], ['mode', this.config.mode, next.mode],
        ['flows', JSON.stringify(this.config.flows), JSON.stringify(next.flows)], ['neighbours', JSON.stringify(this.config.neighbours), JSON.stringify(next.neighbours)],
        ['api', JSON.stringify(this.config.api), JSON.stringify(next.api)], ['state_file', this.config.stateFile, next.stateFile], ['shm_dir', this.config.shmDir, next.shmDir], ['io', JSON.stringify(this.config.io), JSON.stringify(next.io)],
      ];
      // The probers are opened at start, for the check types the start config uses (run.ts): a
      // type none used then has none now, though this build has it.
      const noProbe = this.o.health?.missingProbes(checkTypesUsed(next)) ?? [];
      if (noProbe.length) throw new VipgateError('ECONFIG_INVALID', `${next.file}: health checks of type ${noProbe.join(', ')} were not in use when vipgate started, and their prober is opened at start only. Nothing was changed: restart vipgate to use them, or use type: tcp or type: http`);
      // The SYN-time check's hold queue and prober are set up at start, with its probe timeout: a
      // reload may tune max_age and on_fail or turn it off, but turning it on or a new timeout
      // would be accepted and do nothing.
      const syn0 = this.o.config.synCheck, syn1 = next.synCheck;
      if (syn1 && !syn0) fixed.push(['syn_check (turned on; it was off at start)', 'off', 'on']);
      else if (syn1 && syn0 && syn1.timeoutMs !== syn0.timeoutMs) fixed.push(['syn_check.timeout', syn0.timeoutMs, syn1.timeoutMs]);
      fixed.push(['events', JSON.stringify(this.config.events), JSON.stringify(next.events)]);
      // The cluster's socket, key, peers and timers are set up at start (issue 11); VIP placement may change.
      fixed.push(['cluster', JSON.stringify(this.config.cluster), JSON.stringify(next.cluster)]);
      const needRestart = fixed.filter(([, a, b]) => a !== b).map(([k]) => k);
      if (needRestart.length) {
        throw new VipgateError('ECONFIG_INVALID', `${this.config.file}: ${needRestart.join(', ')} changed; ${needRestart.length > 1 ? 'those take' : 'that takes'} a restart (the packet path and its tables are sized and bound at start). Nothing was changed: revert ${needRestart.length > 1 ? 'them' : 'it'}, or restart vipgate`);
      }
    } catch (e) {
      this.reloadCounts.failed++;
      this.log('error', `reload of ${this.config.file} refused: ${(e as Error).message}`, { event: 'reload_failed' });
      throw e;
    }
    // The same config again (or one differing only in comments and layout): nothing to apply,
    // so the generation stays, and a reload on every deploy does not read as a change (issue 12).
    if (JSON.stringify(next) === JSON.stringify(this.config) && placementText(next) === placementText(this.config)) {
      this.reloadCounts.ok++;
      this.log('info', `reloaded ${next.file}: no changes`, { event: 'reload', changes: [] });
      return { generation: this.overlay.generation, changes: [] };
    }
    // Config backends that leave while flows use them drain first.
    const st = this.o.port.state;
    const addedRetiring: string[] = [];
    for (const b of this.config.backends) {
      if (next.backends.some((n) => n.name === b.name)) continue;
      const slot = this.tables.backendSlot(b.name);
      if (slot >= 0 && st.bFlows[slot]! > 0) {
        const vips = this.config.services.filter((s) => s.active === b.name || s.standby.includes(b.name)).map((s) => s.vip);
        this.retiring.set(b.name, { backend: { ...this.desired.backends.get(b.name)!, state: 'drain', leaving: true }, vips });
        addedRetiring.push(b.name);
      }
    }
    const before = this.desired;
    const icmpBefore = icmpText(this.config.icmp);
    const placementBefore = placementText(this.config);
    try {
      this.apply(cloneOverlay(this.overlay), 'reload', next);
    } catch (e) {
      for (const n of addedRetiring) this.retiring.delete(n);
      this.reloadCounts.failed++;
      const msg = e instanceof ApiError ? `${next.file}: the new config conflicts with the state changed through the API: ${e.message}` : (e as Error).message;
      this.log('error', `reload refused: ${msg}`, { event: 'reload_failed' });
      if (e instanceof ApiError && e.code === 'EAPI_STATE_WRITE') throw e;
      throw new VipgateError('ECONFIG_INVALID', `${msg}; nothing was changed`);
    }
    this.reloadCounts.ok++;
    const changes = describeChanges(before, this.desired);
    if (icmpText(next.icmp) !== icmpBefore) changes.push(`~ icmp ${icmpBefore} -> ${icmpText(next.icmp)}`);
    if (placementText(next) !== placementBefore) changes.push(`~ vip placement ${placementBefore} -> ${placementText(next)}`);
    this.log('info', `reloaded ${next.file}: ${changes.length ? changes.join('; ') : 'no changes'}`, { event: 'reload', changes });
    return { generation: this.overlay.generation, changes };
  }

  // ---- views ----

  private unknownBackend(name: string): ApiError {
    const names = [...this.desired.backends.keys()];
    return new ApiError('EAPI_UNKNOWN_BACKEND', `no backend named ${name}; the backends are: ${names.length ? names.join(', ') : 'none'}`);
  }

  private unknownService(key: string): ApiError {
    const keys = [...this.desired.services.values()].filter((s) => s.members.length).map((s) => s.key);
    return new ApiError('EAPI_UNKNOWN_SERVICE', `no service ${key}; the services are: ${keys.length ? keys.join(', ') : 'none'}`);
  }

  private roles(): Map<string, Set<string>> {
    // service key -> backends serving it now (from the published tables)
    const t = this.tables, out = new Map<string, Set<string>>();
    for (const s of this.desired.services.values()) {
      const i = t.serviceIndex(s.vip, s.port);
      const set = new Set<string>();
      if (i >= 0 && s.members.length) for (const b of t.serving(i)) set.add(t.backendNames[b]!);
      out.set(s.key, set);
    }
    return out;
  }

  private backendView(b: DBackend, roles: Map<string, Set<string>>): BackendView {
    const t = this.tables, st = this.o.port.state, slot = t.backendSlot(b.name);
    let mac: string | null = null, macSource: BackendView['macSource'] = null;
    if (b.mac) { mac = formatMac(b.mac); macSource = 'given'; } else {
      const n = this.o.port.neighbours.lookup(b.ip);
      if (n >= 0) { mac = formatMac(st.nMac, n * 8); macSource = 'arp'; }
    }
    const serves: BackendView['serves'] = [];
    for (const s of this.desired.services.values()) {
      const m = s.members.find((x) => x.name === b.name);
      if (m) serves.push({ service: s.key, priority: m.priority, role: roles.get(s.key)?.has(b.name) ? 'active' : 'standby', pinned: s.pinned });
    }
    const until = this.leaseUntil.get(b.name);
    return {
      name: b.name, ip: formatIpv4(b.ip), mac, macSource, state: b.state, weight: b.weight, source: b.source, serves,
      flows: slot >= 0 ? Math.max(0, st.bFlows[slot]!) : 0,
      connections: slot >= 0 ? st.bConns[slot]! : 0,
      lease: b.lease > 0 ? { seconds: b.lease, expiresIn: until === undefined ? 0 : Math.max(0, Math.round((until - this.clock()) / 1000)) } : null,
      leaving: b.leaving,
      health: this.healthView(b),
    };
  }

  private healthView(b: DBackend): HealthView {
    if (this.o.health) return this.o.health.view(b.name);
    return { state: b.check ? 'unknown' : 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null };
  }

  private serviceView(s: DService, roles = this.roles()): ServiceView {
    const serving = roles.get(s.key) ?? new Set<string>();
    const order = serviceOrder(s);
    const members: MemberView[] = [...order.active, ...order.standby].map((name) => {
      const b = this.desired.backends.get(name)!;
      return { backend: name, priority: s.members.find((m) => m.name === name)!.priority, weight: b.weight, state: b.state, role: serving.has(name) ? 'active' : 'standby' };
    });
    const op = this.svcStates.get(s.key);
    const f = s.failover;
    return {
      service: s.key, vip: formatIpv4(s.vip), port: s.port, mode: s.port ? 'port' : 'ip', source: s.source, pinned: s.pinned, members, serving: [...serving],
      failover: {
        spares: f.spares, preempt: f.preempt, holdDownMs: f.holdDownMs, onBackendDown: f.onBackendDown,
        takenOverBy: op?.serving ?? null, failbackAt: op?.holdUntil ? new Date(op.holdUntil).toISOString() : null,
      },
    };
  }

  backend(name: string): BackendView {
    const b = this.desired.backends.get(name);
    if (!b) throw this.unknownBackend(String(name).slice(0, 64));
    return this.backendView(b, this.roles());
  }

  backends(): BackendView[] {
    const roles = this.roles();
    return [...this.desired.backends.values()].map((b) => this.backendView(b, roles));
  }

  services(): ServiceView[] {
    const roles = this.roles();
    return [...this.desired.services.values()].filter((s) => s.members.length > 0).map((s) => this.serviceView(s, roles));
  }

  vips(): VipView[] {
    const svcs = [...this.desired.services.values()].filter((s) => s.members.length > 0);
    const arp = this.ownership.arpVips === null ? null : new Set(this.ownership.arpVips);
    return [...this.desired.vips].map(([ip, source]) => ({
      vip: formatIpv4(ip), source, services: svcs.filter((s) => s.vip === ip).map((s) => s.key), arp: arp === null || arp.has(ip | 0),
    }));
  }

  counters(): CounterSnapshot { return snapshotCounters(this.o.port.state.counters); }

  status(): StatusView {
    const snap = this.counters();
    const bs = [...this.desired.backends.values()];
    return {
      version: this.o.version ?? 'unknown', pid: process.pid, uptimeSeconds: Math.round((this.clock() - this.started) / 1000),
      interface: this.o.iface ?? this.config.interface, mode: this.config.mode, mac: formatMac(this.o.mac),
      configFile: this.config.file, stateFile: this.o.stateFile, generation: this.overlay.generation,
      vips: this.desired.vips.size, services: [...this.desired.services.values()].filter((s) => s.members.length).length,
      backends: { total: bs.length, up: bs.filter((b) => b.state === 'up').length, drain: bs.filter((b) => b.state === 'drain').length, down: bs.filter((b) => b.state === 'down').length },
      flows: { active: snap.counters.flows_active, capacity: this.o.port.state.flowCapacity },
      counters: snap.counters, drops: snap.drops,
      ...(this.o.runtime?.() ?? { worker: null, sharedState: null }),
    };
  }

  flows(q: FlowQuery): FlowPage {
    const bad = (field: string, m: string) => new ApiError('EAPI_INVALID', `${field}: ${m}`, field);
    const ipFilter = (v: string | undefined, field: string): number | null => {
      if (v === undefined) return null;
      const ip = parseIpv4(v);
      if (ip === null) throw bad(field, `${JSON.stringify(v.slice(0, 40))} is not an IPv4 address`);
      return ip | 0;
    };
    const vip = ipFilter(q.vip, 'vip'), client = ipFilter(q.client, 'client');
    const port = q.port ?? null;
    if (port !== null && (!Number.isInteger(port) || port < 0 || port > 65535)) throw bad('port', 'must be 0..65535');
    let slotWanted = -1;
    if (q.backend !== undefined) {
      if (!this.desired.backends.has(q.backend)) throw this.unknownBackend(q.backend.slice(0, 64));
      slotWanted = this.tables.backendSlot(q.backend);
    }
    const stateWanted = q.state === undefined ? -1 : FLOW_STATE_NAMES.indexOf(q.state);
    if (q.state !== undefined && stateWanted < 2) throw bad('state', 'use syn, established or closing');
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > FLOW_PAGE_MAX) throw bad('limit', `must be 1..${FLOW_PAGE_MAX}`);
    const st = this.o.port.state, fl = this.o.port.flows, t = this.tables;
    let start = 0;
    if (q.cursor !== undefined) {
      start = /^\d{1,9}$/.test(q.cursor) ? Number(q.cursor) : -1;
      if (start < 0 || start > st.flowSlots) throw bad('cursor', 'not a cursor from a previous page; start without one');
    }
    const now = this.clock();
    const out: FlowView[] = [];
    let s = start;
    const end = Math.min(st.flowSlots, start + FLOW_SCAN_BUDGET);
    for (; s < end && out.length < limit; s++) {
      const state = fl.state(s);
      if (state < 2) continue;
      if (now - fl.lastSeen(s) > fl.timeoutOf(state)) continue; // idle past its timeout: expired, not yet swept
      if (stateWanted >= 0 && state !== stateWanted) continue;
      if (vip !== null && fl.vip(s) !== vip) continue;
      if (client !== null && fl.client(s) !== client) continue;
      const ports = fl.ports(s);
      if (port !== null && (ports & 0xffff) !== port) continue;
      const b = fl.backend(s);
      if (slotWanted >= 0 && b !== slotWanted) continue;
      out.push({
        client: `${formatIpv4(fl.client(s))}:${ports >>> 16}`, vip: `${formatIpv4(fl.vip(s))}:${ports & 0xffff}`,
        backend: t.backendNames[b] || `(removed slot ${b})`, backendIp: formatIpv4(fl.backendIp(s)),
        state: FLOW_STATE_NAMES[state] as FlowView['state'],
        ageSeconds: Math.max(0, Math.round((now - fl.created(s)) / 1000)), idleSeconds: Math.max(0, Math.round((now - fl.lastSeen(s)) / 1000)),
        packetsIn: fl.packetsIn(s), packetsOut: fl.packetsOut(s),
      });
    }
    return { flows: out, next: s < st.flowSlots ? String(s) : null };
  }

  neighbours(): NeighbourView[] {
    const st = this.o.port.state, now = this.clock(), out: NeighbourView[] = [];
    for (let s = 0; s < st.neighbourSlots; s++) {
      if (st.nState[s] === 0) continue;
      out.push({ ip: formatIpv4(st.nIp[s]!), mac: formatMac(st.nMac, s * 8), ageSeconds: Math.max(0, Math.round((now - st.nSeen[s]!) / 1000)) });
    }
    return out.sort((a, b) => (parseIpv4(a.ip)! - parseIpv4(b.ip)!));
  }

  transitions(): Array<{ backend: string; to: AdminState | 'removed'; count: number }> {
    return [...this.transitionCounts].map(([k, count]) => {
      const [backend, to] = k.split('\u0000') as [string, AdminState | 'removed'];
      return { backend, to, count };
    });
  }

  reloads(): { ok: number; failed: number } { return { ...this.reloadCounts }; }

  async events(q: EventQuery): Promise<EventPage> {
    const int = (v: number | undefined, field: string, min: number, max: number, dflt: number): number => {
      if (v === undefined) return dflt;
      if (!Number.isInteger(v) || v < min || v > max) throw new ApiError('EAPI_INVALID', `${field}: must be a whole number ${min}..${max}`, field);
      return v;
    };
    const since = int(q.since, 'since', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = int(q.limit, 'limit', 1, 1000, 100);
    const wait = int(q.wait, 'wait', 0, 60, 0);
    await this.eventLog.wait(since, wait * 1000);
    return this.eventLog.since(since, limit);
  }

  /** The registrations held now (tests, status file). */
  registrations(): readonly Registration[] { return this.overlay.registrations; }
}

/** The check types a config uses (its default and every backend's). */
export function checkTypesUsed(c: Config): CheckType[] {
  const out = new Set<CheckType>();
  if (c.health) out.add(c.health.type);
  for (const b of c.backends) if (b.health) out.add(b.health.type);
  return [...out];
}

/** The icmp section as a reload lists it: "echo on, 1000/s, burst 50" or "echo off". */
function icmpText(i: Config['icmp']): string {
  return i.echo ? `echo on, ${i.echoRate}/s, burst ${i.echoBurst}` : 'echo off';
}

/** The cluster's VIP placements (a Map, which JSON.stringify would show as {}). */
function placementText(c: Config): string {
  const p = [...c.vipPlacement].sort(([a], [b]) => a - b);
  return p.length ? p.map(([v, x]) => `${formatIpv4(v)} ${x.prefer !== null ? `prefer ${x.prefer} ` : ''}${x.placement}`).join(', ') : 'priority for all';
}

/** Human lines for what a reload changed. */
function describeChanges(a: Desired, b: Desired): string[] {
  const out: string[] = [];
  for (const v of b.vips.keys()) if (!a.vips.has(v)) out.push(`+ vip ${formatIpv4(v)}`);
  for (const v of a.vips.keys()) if (!b.vips.has(v)) out.push(`- vip ${formatIpv4(v)}`);
  for (const [n, x] of b.backends) {
    const o = a.backends.get(n);
    if (!o) out.push(`+ backend ${n} ${formatIpv4(x.ip)}`);
    else if (x.leaving && !o.leaving) out.push(`- backend ${n} (draining its flows first)`);
    else if (o.ip !== x.ip || o.weight !== x.weight || (o.mac ? formatMac(o.mac) : '') !== (x.mac ? formatMac(x.mac) : '')) out.push(`~ backend ${n}`);
  }
  for (const n of a.backends.keys()) if (!b.backends.has(n)) out.push(`- backend ${n}`);
  const order = (s: DService) => JSON.stringify(serviceOrder(s));
  for (const [k, s] of b.services) {
    const o = a.services.get(k);
    if (!o || !o.members.length) { if (s.members.length) out.push(`+ service ${k}`); } else if (!s.members.length) out.push(`- service ${k}`);
    else if (order(o) !== order(s)) out.push(`~ service ${k}: active ${serviceOrder(s).active.join('+')}, standby ${serviceOrder(s).standby.join(', ') || 'none'}`);
  }
  for (const [k, s] of a.services) if (s.members.length && !b.services.has(k)) out.push(`- service ${k}`);
  return out;
}
