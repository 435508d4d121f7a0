// The health checker: runs each backend's check on its schedule (spread over the interval with
// jitter, faster while its state is changing), feeds results through the pure health machine,
// and reports transitions (to the event sink and to the controller, which republishes the tables
// without persisting anything). The probes are injected by type (tcp, http, syn), so the
// composition root joins them and the tests use fakes; time comes in as `now` or from `clock`.

import type { CheckType, HealthCheck } from '../config/health';
import type { EventSink, HealthObserver, ProbeResult } from './types';
import type { Probe } from './probes';
import { HealthState, HealthStatus, HealthTransition, initialHealth, stepHealth, nextCheckDelay, firstCheckDelay, isChanging } from './machine';
import { formatIpv4 } from '../../wire/addr';

export interface HealthTarget {
  name: string;
  ip: number;
  /** null: never checked (health: false, or no default check): always usable. */
  check: HealthCheck | null;
  /** The ports checked, each on its own schedule (the check's own port, else each port-mode service's port, else 80). */
  ports: readonly number[];
}

/** One check: a backend on one port. */
interface Target { name: string; ip: number; check: HealthCheck | null; port: number }

/** What the API shows beside a backend's admin state. */
export interface HealthView {
  /** unchecked: health: false (or no check configured): always usable. */
  state: HealthStatus | 'unchecked';
  /** "tcp :80 every 1s, timeout 100ms, rise 2, fall 3", or null. */
  check: string | null;
  since: string | null;
  lastCheck: string | null;
  lastLatencyMs: number | null;
  /** Reason of the last failed check and when, or null (never failed). */
  lastFailure: string | null;
  lastFailureAt: string | null;
}

export interface HealthListener {
  /** A backend's health changed: republish the tables. */
  transition(name: string, t: HealthTransition, now: number): void;
  /** A check (or a SYN-time probe) succeeded: the time for bHealthOkAt. */
  ok(name: string, now: number): void;
}

export interface HealthManagerOptions {
  probes: Partial<Record<CheckType, Probe>>;
  events: EventSink;
  clock?: () => number;
  /** [0, 1): jitter and spreading (seeded in tests). */
  random?: () => number;
}

interface Entry {
  target: Target;
  state: HealthState;
  due: number;
  inflight: boolean;
  /** Bumped when the target changes: a result of a probe started before is dropped. */
  gen: number;
}

function describeCheck(c: HealthCheck, ports: readonly number[]): string {
  const path = c.type === 'http' ? ` ${c.http?.path ?? '/'}` : '';
  return `${c.type} ${ports.map((p) => `:${p}`).join(',')}${path} every ${c.intervalMs}ms (${c.fastIntervalMs}ms while changing), timeout ${c.timeoutMs}ms, rise ${c.rise}, fall ${c.fall}`;
}

const iso = (t: number | null) => (t === null || t === 0 ? null : new Date(t).toISOString());

const NO_ENTRIES: readonly Entry[] = [];

export class HealthManager implements HealthObserver {
  private readonly entries = new Map<string, Entry>();
  /** The entries by backend name (one per checked port), rebuilt by setTargets: status() runs per member on every table build. */
  private readonly byName = new Map<string, Entry[]>();
  private listener: HealthListener | null = null;
  private readonly clock: () => number;
  private readonly random: () => number;
  private stopped = false;
  private readonly checks = { ok: 0, failed: 0 };

  constructor(private readonly o: HealthManagerOptions) {
    this.clock = o.clock ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  listen(l: HealthListener): void { this.listener = l; }

  /** Check types with no probe wired (run refuses a config that uses one). */
  missingProbes(types: Iterable<CheckType>): CheckType[] {
    return [...new Set(types)].filter((t) => !this.o.probes[t]);
  }

  /**
   * The backends to check now (after every applied change). A backend whose address and check
   * are unchanged keeps its state and schedule. One whose check changed (a reload) keeps its
   * health — a reload must not bring a dead backend back — and is checked anew within the
   * interval; a new one, or one with a new address, starts unknown, its first check spread over
   * the first interval.
   */
  setTargets(targets: readonly HealthTarget[], now: number = this.clock()): void {
    const keep = new Set<string>();
    for (const x of targets) for (const port of x.check ? x.ports : [0]) {
      const t: Target = { name: x.name, ip: x.ip, check: x.check, port };
      const key = `${t.name}:${port}`;
      keep.add(key);
      const e = this.entries.get(key);
      const same = e && e.target.ip === t.ip && JSON.stringify(e.target.check) === JSON.stringify(t.check);
      if (same) continue;
      const keepState = e && e.target.ip === t.ip && e.target.check !== null && t.check !== null;
      this.entries.set(key, {
        target: t, state: keepState ? e.state : initialHealth(now), inflight: false, gen: (e?.gen ?? 0) + 1,
        due: t.check ? now + firstCheckDelay(t.check, this.random()) : Infinity,
      });
    }
    for (const name of [...this.entries.keys()]) if (!keep.has(name)) this.entries.delete(name);
    this.byName.clear();
    for (const e of this.entries.values()) {
      const list = this.byName.get(e.target.name);
      if (list) list.push(e); else this.byName.set(e.target.name, [e]);
    }
  }

  /** Start the checks that are due. Call often (every few ms to tens of ms). */
  tick(now: number = this.clock()): void {
    if (this.stopped) return;
    for (const e of this.entries.values()) {
      if (e.inflight || e.due > now || !e.target.check) continue;
      const probe = this.o.probes[e.target.check.type];
      if (!probe) continue;
      e.inflight = true;
      const gen = e.gen, key = `${e.target.name}:${e.target.port}`, check = e.target.check;
      let p: Promise<ProbeResult>;
      try { p = probe({ ip: formatIpv4(e.target.ip), port: e.target.port }, check); } catch (err) {
        p = Promise.resolve({ ok: false, latencyMs: 0, reason: `probe error: ${(err as Error).message}` });
      }
      p.catch((err: Error) => ({ ok: false, latencyMs: 0, reason: `probe error: ${err.message}` }))
        .then((r) => {
          const cur = this.entries.get(key);
          if (!cur || cur.gen !== gen || this.stopped) return;
          cur.inflight = false;
          const t = this.clock();
          this.record(cur, r, t);
          cur.due = t + nextCheckDelay(cur.state, check, this.random());
        });
    }
  }

  /** A result from outside the periodic checks (a SYN-time probe): one more check result. */
  observe(backend: string, result: ProbeResult, now: number, port?: number): void {
    if (this.stopped) return;
    // Checked on the probed port: that check alone. Otherwise (no port, or the check has a port
    // of its own) the result counts for each of the backend's checks.
    const own = port === undefined ? undefined : this.entries.get(`${backend}:${port}`);
    for (const e of own?.target.check ? [own] : this.of(backend)) {
      if (!e.target.check) continue;
      this.record(e, result, now);
      // Now changing: the next periodic check comes at the faster interval.
      if (isChanging(e.state) && !e.inflight) e.due = Math.min(e.due, now + nextCheckDelay(e.state, e.target.check, this.random()));
    }
  }

  private of(name: string): readonly Entry[] {
    return this.byName.get(name) ?? NO_ENTRIES;
  }

  private record(e: Entry, r: ProbeResult, now: number): void {
    if (r.ok) this.checks.ok++; else this.checks.failed++;
    const { state, transition } = stepHealth(e.state, r, now, e.target.check!);
    e.state = state;
    if (r.ok) this.listener?.ok(e.target.name, now);
    if (!transition) return;
    this.o.events.emit(`health_${transition.to === 'up' ? 'up' : 'down'}`, {
      backend: e.target.name, ip: formatIpv4(e.target.ip), port: e.target.port, from: transition.from, to: transition.to,
      reason: transition.reason, latencyMs: Math.round(r.latencyMs * 1000) / 1000,
    }, now);
    this.listener?.transition(e.target.name, transition, now);
  }

  /**
   * Health for the tables: on `port` when the backend is checked there; else over all its checks:
   * down when every check is down, up when one is up, else unknown (not checked yet, or not here).
   */
  status(name: string, port?: number): HealthStatus {
    if (port !== undefined) {
      const e = this.entries.get(`${name}:${port}`);
      if (e) return e.state.status;
    }
    const all = this.of(name).filter((e) => e.target.check);
    if (all.length === 0) return 'unknown';
    if (all.every((e) => e.state.status === 'down')) return 'down';
    return all.some((e) => e.state.status === 'up') ? 'up' : 'unknown';
  }

  view(name: string): HealthView {
    const all = this.of(name).filter((e) => e.target.check);
    if (all.length === 0) return { state: 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null };
    const last = <K extends 'lastCheck' | 'lastFailAt' | 'since'>(k: K) => all.reduce((a, e) => ((e.state[k] ?? 0) > (a.state[k] ?? 0) ? e : a));
    const checked = last('lastCheck'), failed = last('lastFailAt');
    // Several ports: a port down while another is up shows as "up" overall; its failure names the port.
    const down = all.filter((e) => e.state.status === 'down');
    const f = down.length ? down.reduce((a, e) => ((e.state.lastFailAt ?? 0) > (a.state.lastFailAt ?? 0) ? e : a)) : failed;
    return {
      state: this.status(name), check: describeCheck(all[0]!.target.check!, all.map((e) => e.target.port)),
      since: iso(last('since').state.since), lastCheck: iso(checked.state.lastCheck),
      lastLatencyMs: checked.state.lastLatencyMs === null ? null : Math.round(checked.state.lastLatencyMs * 1000) / 1000,
      lastFailure: f.state.lastReason === null ? null : all.length > 1 ? `:${f.target.port} ${f.state.lastReason}` : f.state.lastReason,
      lastFailureAt: iso(f.state.lastFailAt),
    };
  }

  /** Checks run so far (metrics). */
  checkCounts(): { ok: number; failed: number } { return { ...this.checks }; }

  stop(): void { this.stopped = true; }
}
