// The state machines of health checking and failover (JP2003-188905), as pure functions of
// (state, event, now) -> (state, transitions): no timers, no I/O, no clock of their own, so the
// tests drive them with a fake clock and the manager and the controller only carry their state.
//
//   health, per backend:  unknown --ok--> up;  up --fall fails in a row--> down;
//                         down --rise oks in a row--> up;  unknown --fall fails--> down
//   service, per VIP[:PORT]: which member serves new flows (ACT) and in what order the others
//                         (SBY: standbys, then spares) follow; failover when no active member is
//                         usable, fail-back (preempt) after a hold-down, exclusive spare pools.

import type { ProbeResult } from './types';

export type HealthStatus = 'unknown' | 'up' | 'down';

export interface HealthRule { rise: number; fall: number }

export interface HealthState {
  status: HealthStatus;
  /** Good / failed results in a row (one of them is 0). */
  okRun: number;
  failRun: number;
  /** When status last changed (or the state was created). */
  since: number;
  lastCheck: number | null;
  lastLatencyMs: number | null;
  /** Reason of the last failed check (kept after later good ones, with lastFailAt). */
  lastReason: string | null;
  lastFailAt: number | null;
  /** Last good check; 0 = never. */
  lastOkAt: number;
}

export interface HealthTransition { from: HealthStatus; to: HealthStatus; reason: string | null }

export function initialHealth(now: number): HealthState {
  return { status: 'unknown', okRun: 0, failRun: 0, since: now, lastCheck: null, lastLatencyMs: null, lastReason: null, lastFailAt: null, lastOkAt: 0 };
}

/**
 * One check result. A first good result makes an unknown backend up at once (it already takes
 * flows: unknown counts as usable); down needs `fall` failures in a row from unknown or up, and up
 * needs `rise` good results in a row from down.
 */
export function stepHealth(s: HealthState, r: ProbeResult, now: number, rule: HealthRule): { state: HealthState; transition: HealthTransition | null } {
  const n: HealthState = { ...s, lastCheck: now, lastLatencyMs: r.latencyMs };
  if (r.ok) {
    n.okRun = s.okRun + 1; n.failRun = 0; n.lastOkAt = now;
    if (s.status === 'unknown' || (s.status === 'down' && n.okRun >= rule.rise)) n.status = 'up';
  } else {
    n.failRun = s.failRun + 1; n.okRun = 0; n.lastReason = r.reason ?? 'failed'; n.lastFailAt = now;
    if (s.status !== 'down' && n.failRun >= rule.fall) n.status = 'down';
  }
  if (n.status === s.status) return { state: n, transition: null };
  n.since = now;
  return { state: n, transition: { from: s.status, to: n.status, reason: r.ok ? null : n.lastReason } };
}

/** A result disagrees with the state: the backend is checked at the faster interval until it settles. */
export function isChanging(s: HealthState): boolean {
  return (s.status !== 'up' && s.okRun > 0) || (s.status !== 'down' && s.failRun > 0) || s.status === 'unknown';
}

export interface Schedule { intervalMs: number; fastIntervalMs: number }

/**
 * Delay from the end of one check to the start of the next: the interval, or the fast interval
 * while the state is changing, with ±10% jitter (`rand` in [0, 1)) so checks of many backends
 * never line up.
 */
export function nextCheckDelay(s: HealthState, c: Schedule, rand: number): number {
  const base = isChanging(s) ? c.fastIntervalMs : c.intervalMs;
  return Math.max(1, Math.round(base * (0.9 + 0.2 * rand)));
}

/** The first check of a backend: anywhere in the first interval, so a start (or reload) spreads them. */
export function firstCheckDelay(c: Schedule, rand: number): number {
  return Math.round(c.intervalMs * rand);
}

// ---------------------------------------------------------------------------------------------
// Services: active/standby/spare, failover and fail-back

export interface SparePoolRef { name: string; exclusive: boolean; members: readonly string[] }

export interface ServiceInput {
  key: string;
  /** The active group and the standbys in preference order (a switch's pin already applied). */
  active: readonly string[];
  standby: readonly string[];
  /** A manual switch pinned the active member: it wins over preempt and hold-down. */
  pinned: boolean;
  pool: SparePoolRef | null;
  preempt: boolean;
  holdDownMs: number;
}

export interface ServiceState {
  /** The member that took over (ACT) while the active group is, or was, unusable; null = the active group serves. */
  serving: string | null;
  /** Fail-back to a better member once now >= holdUntil (preempt); null = none pending. */
  holdUntil: number | null;
  /** No member was usable at the last step (reported once). */
  empty: boolean;
}

export type ServiceEventType = 'failover' | 'failback' | 'failback_scheduled' | 'no_backend' | 'restored';

export interface ServiceTransition {
  type: ServiceEventType;
  service: string;
  /** The members new flows went to before, and go to now ([] = none). */
  from: string[];
  to: string[];
  /** For failback_scheduled: when it happens. */
  at?: number;
}

export interface ServiceOrder { active: string[]; standby: string[] }

export interface ServicesStep {
  states: Map<string, ServiceState>;
  orders: Map<string, ServiceOrder>;
  transitions: ServiceTransition[];
  /** The earliest pending fail-back, or null: when to step again without a health change. */
  nextAt: number | null;
}

const NORMAL: ServiceState = { serving: null, holdUntil: null, empty: false };

/**
 * Decide, for every service, who serves new flows and in what order the rest follow. `usableIn`
 * says whether a backend may take new flows of a service (admin state up and health not down,
 * on the service's port where the backend is checked per port). Exclusive pool
 * spares go to one service at a time: a spare keeps serving the service that has it while that
 * service needs it, and otherwise goes to the first service (in input order) that needs one.
 */
export function stepServices(prev: ReadonlyMap<string, ServiceState>, inputs: readonly ServiceInput[], usableIn: (name: string, svc: ServiceInput) => boolean, now: number): ServicesStep {
  const poolKey = (svc: ServiceInput, m: string) => `${svc.pool!.name}\u0000${m}`;
  /** Exclusive spares held by a service in `states`: reserved for it. */
  const holders = (states: ReadonlyMap<string, ServiceState>) => {
    const h = new Map<string, string>();
    for (const svc of inputs) {
      const x = states.get(svc.key)?.serving;
      if (svc.pool?.exclusive && x && svc.pool.members.includes(x) && usableIn(x, svc)) h.set(poolKey(svc, x), svc.key);
    }
    return h;
  };
  const sparesOf = (svc: ServiceInput, holder: ReadonlyMap<string, string>, taken?: ReadonlySet<string>) => {
    const own = new Set([...svc.active, ...svc.standby]);
    return (svc.pool?.members ?? []).filter((m) => {
      if (own.has(m)) return false;
      if (!svc.pool!.exclusive) return true;
      const h = holder.get(poolKey(svc, m));
      return (h === undefined || h === svc.key) && !taken?.has(poolKey(svc, m));
    });
  };

  // Who holds an exclusive spare depends on who still needs one: decide with the holders of the
  // previous step, then again with the holders that decision gives, until it settles (a spare
  // released by one service is taken by the next in the same step).
  let decided = decide(prev, holders(prev));
  for (let i = 0; i < 4; i++) {
    const again = decide(prev, holders(decided.states));
    const same = [...again.states].every(([k, v]) => decided.states.get(k)?.serving === v.serving);
    decided = again;
    if (same) break;
  }
  const { states, transitions, nextAt } = decided;
  const finalHolders = holders(states);
  const orders = new Map<string, ServiceOrder>();
  for (const svc of inputs) {
    const next = states.get(svc.key)!;
    const rest = [...svc.standby, ...sparesOf(svc, finalHolders)];
    orders.set(svc.key, next.serving === null
      ? { active: [...svc.active], standby: rest }
      : { active: [next.serving], standby: [...svc.active, ...rest].filter((n) => n !== next.serving) });
  }
  return { states, orders, transitions, nextAt };

  function decide(prevStates: ReadonlyMap<string, ServiceState>, holder: ReadonlyMap<string, string>) {
    const states = new Map<string, ServiceState>();
    const transitions: ServiceTransition[] = [];
    let nextAt: number | null = null;
    const taken = new Set<string>();
    for (const svc of inputs) {
      const usable = (n: string) => usableIn(n, svc);
      const rest = [...svc.standby, ...sparesOf(svc, holder, taken)];
      const p = prevStates.get(svc.key) ?? NORMAL;
      const primaryUsable = svc.active.some(usable);
      let next: ServiceState;
      if (svc.pinned) {
        next = { serving: null, holdUntil: null, empty: !primaryUsable && !rest.some(usable) };
      } else if (p.serving === null || !rest.includes(p.serving) || !usable(p.serving)) {
        // Normal, or the member that took over is gone: the first usable in order.
        if (primaryUsable) next = { serving: null, holdUntil: null, empty: false };
        else {
          const x = rest.find(usable);
          next = x === undefined ? { serving: null, holdUntil: null, empty: true } : { serving: x, holdUntil: null, empty: false };
        }
      } else {
        // Failed over to p.serving, which still works: return to a better member? (preempt, hold-down)
        const x = p.serving;
        // Better: the active group, or a standby ranked above x. Never another spare: moving from
        // one healthy spare to another only churns (the patent returns to the original only).
        const sb = svc.standby.indexOf(x);
        const better = primaryUsable ? null : svc.standby.slice(0, sb < 0 ? svc.standby.length : sb).find(usable);
        if ((!primaryUsable && better === undefined) || !svc.preempt) next = { serving: x, holdUntil: null, empty: false };
        else {
          const until = p.holdUntil ?? now + svc.holdDownMs;
          if (now >= until) next = { serving: primaryUsable ? null : better!, holdUntil: null, empty: false };
          else {
            next = { serving: x, holdUntil: until, empty: false };
            if (p.holdUntil === null) transitions.push({ type: 'failback_scheduled', service: svc.key, from: [x], to: primaryUsable ? svc.active.filter(usable) : [better!], at: until });
            nextAt = nextAt === null ? until : Math.min(nextAt, until);
          }
        }
      }
      if (svc.pool?.exclusive && next.serving !== null && svc.pool.members.includes(next.serving)) taken.add(poolKey(svc, next.serving));

      const before = p.serving === null ? [...svc.active] : [p.serving];
      const after = next.serving === null ? svc.active.filter(usable) : [next.serving];
      if (next.empty && !p.empty) transitions.push({ type: 'no_backend', service: svc.key, from: before, to: [] });
      else if (!next.empty && p.empty) transitions.push({ type: 'restored', service: svc.key, from: [], to: after });
      else if (p.serving !== next.serving && !svc.pinned) {
        const back = next.serving === null || (p.serving !== null && rest.indexOf(next.serving) < rest.indexOf(p.serving));
        transitions.push({ type: back && p.serving !== null && usable(p.serving) ? 'failback' : 'failover', service: svc.key, from: before, to: after });
      }
      states.set(svc.key, next);
    }
    return { states, transitions, nextAt };
  }
}
