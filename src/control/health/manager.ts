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
  /** The port checked (the check's own, else the backend's first port-mode service port, else 80). */
  port: number;
}

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
  target: HealthTarget;
  state: HealthState;
  due: number;
  inflight: boolean;
  /** Bumped when the target changes: a result of a probe started before is dropped. */
  gen: number;
}

function describeCheck(c: HealthCheck, port: number): string {
  const path = c.type === 'http' ? ` ${c.http?.path ?? '/'}` : '';
  return `${c.type} :${port}${path} every ${c.intervalMs}ms (${c.fastIntervalMs}ms while changing), timeout ${c.timeoutMs}ms, rise ${c.rise}, fall ${c.fall}`;
}

const iso = (t: number | null) => (t === null || t === 0 ? null : new Date(t).toISOString());

export class HealthManager implements HealthObserver {
  private readonly entries = new Map<string, Entry>();
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
   * The backends to check now (after every applied change). A backend whose address or check is
   * unchanged keeps its state; a new or changed one starts unknown, its first check spread over
   * the first interval.
   */
  setTargets(targets: readonly HealthTarget[], now: number = this.clock()): void {
    const keep = new Set<string>();
    for (const t of targets) {
      keep.add(t.name);
      const e = this.entries.get(t.name);
      const same = e && e.target.ip === t.ip && e.target.port === t.port && JSON.stringify(e.target.check) === JSON.stringify(t.check);
      if (same) continue;
      this.entries.set(t.name, {
        target: t, state: initialHealth(now), inflight: false, gen: (e?.gen ?? 0) + 1,
        due: t.check ? now + firstCheckDelay(t.check, this.random()) : Infinity,
      });
    }
    for (const name of [...this.entries.keys()]) if (!keep.has(name)) this.entries.delete(name);
  }

  /** Start the checks that are due. Call often (every few ms to tens of ms). */
  tick(now: number = this.clock()): void {
    if (this.stopped) return;
    for (const e of this.entries.values()) {
      if (e.inflight || e.due > now || !e.target.check) continue;
      const probe = this.o.probes[e.target.check.type];
      if (!probe) continue;
      e.inflight = true;
      const gen = e.gen, name = e.target.name, check = e.target.check;
      let p: Promise<ProbeResult>;
      try { p = probe({ ip: formatIpv4(e.target.ip), port: e.target.port }, check); } catch (err) {
        p = Promise.resolve({ ok: false, latencyMs: 0, reason: `probe error: ${(err as Error).message}` });
      }
      p.catch((err: Error) => ({ ok: false, latencyMs: 0, reason: `probe error: ${err.message}` }))
        .then((r) => {
          const cur = this.entries.get(name);
          if (!cur || cur.gen !== gen || this.stopped) return;
          cur.inflight = false;
          const t = this.clock();
          this.record(cur, r, t);
          cur.due = t + nextCheckDelay(cur.state, check, this.random());
        });
    }
  }

  /** A result from outside the periodic checks (a SYN-time probe): one more check result. */
  observe(backend: string, result: ProbeResult, now: number): void {
    const e = this.entries.get(backend);
    if (!e || !e.target.check || this.stopped) return;
    this.record(e, result, now);
    // Now changing: the next periodic check comes at the faster interval.
    if (isChanging(e.state) && !e.inflight) e.due = Math.min(e.due, now + nextCheckDelay(e.state, e.target.check, this.random()));
  }

  private record(e: Entry, r: ProbeResult, now: number): void {
    if (r.ok) this.checks.ok++; else this.checks.failed++;
    const { state, transition } = stepHealth(e.state, r, now, e.target.check!);
    e.state = state;
    if (r.ok) this.listener?.ok(e.target.name, now);
    if (!transition) return;
    this.o.events.emit(`health_${transition.to === 'up' ? 'up' : 'down'}`, {
      backend: e.target.name, ip: formatIpv4(e.target.ip), from: transition.from, to: transition.to,
      reason: transition.reason, latencyMs: Math.round(r.latencyMs * 1000) / 1000,
    }, now);
    this.listener?.transition(e.target.name, transition, now);
  }

  /** Health for the tables: unknown until checked; a backend not checked here counts as unknown. */
  status(name: string): HealthStatus {
    return this.entries.get(name)?.state.status ?? 'unknown';
  }

  view(name: string): HealthView {
    const e = this.entries.get(name);
    if (!e || !e.target.check) return { state: 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null };
    const s = e.state;
    return {
      state: s.status, check: describeCheck(e.target.check, e.target.port), since: iso(s.since), lastCheck: iso(s.lastCheck),
      lastLatencyMs: s.lastLatencyMs === null ? null : Math.round(s.lastLatencyMs * 1000) / 1000,
      lastFailure: s.lastReason, lastFailureAt: iso(s.lastFailAt),
    };
  }

  /** Checks run so far (metrics). */
  checkCounts(): { ok: number; failed: number } { return { ...this.checks }; }

  stop(): void { this.stopped = true; }
}
