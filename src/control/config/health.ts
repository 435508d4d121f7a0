// The config sections of health checking and failover (issue 8): `health` (the default check and
// per backend), `spares` (shared priority spare pools), the per-service keys `spares`, `preempt`,
// `hold_down`, `on_backend_down`, and `syn_check` and `events`. config.ts calls these with its
// checker; every problem is reported at its line like the rest of the file.

import { isScalar } from 'yaml';

/** An http check's defaults: GET / with no Host header of its own, any 2xx or 3xx, no body match. */
export function httpCheckDefaults(): HttpCheck {
  return { path: '/', host: null, status: [[200, 399]], body: null };
}

export type CheckType = 'tcp' | 'http' | 'syn';
export const CHECK_TYPES: readonly CheckType[] = ['tcp', 'http', 'syn'];

export interface HttpCheck {
  /** Request path, starting with "/". */
  path: string;
  /** Host header; null = the backend's IP. */
  host: string | null;
  /** Accepted status codes: [lo, hi] inclusive ranges. */
  status: Array<[number, number]>;
  /** A string the body must contain (first 64 KiB), or null. */
  body: string | null;
}

export interface HealthCheck {
  type: CheckType;
  /** null: the port of the first port-mode service the backend serves, else 80. */
  port: number | null;
  intervalMs: number;
  timeoutMs: number;
  /** Checks while the state is changing (a result differs from the state): faster, to decide sooner. */
  fastIntervalMs: number;
  rise: number;
  fall: number;
  http: HttpCheck | null;
}

/**
 * Defaults: the patent's (JP2003-188905) 1 s interval and 10 ms watchdog. Kept after measuring
 * whether a 10 ms timeout flaps under load (bench/health-timeout.bench.ts; the README, "Health
 * checks, spares and failover", has the figures): no false failure at 10 ms or at 100 ms.
 */
export const HEALTH_DEFAULTS = { type: 'tcp' as CheckType, intervalMs: 1000, timeoutMs: 10, rise: 2, fall: 3 };

export interface SparePool { name: string; exclusive: boolean; members: string[]; line: number }

export interface ServiceFailover {
  /** Name of a spare pool, or null. */
  spares: string | null;
  /** true: new flows return to the original member once it is back (after hold_down). */
  preempt: boolean;
  holdDownMs: number;
  onBackendDown: 'reset' | 'keep';
}

export const FAILOVER_DEFAULTS: ServiceFailover = { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset' };

export interface SynCheckConfig { maxAgeMs: number; timeoutMs: number; onFail: 'next' | 'reset' }

export interface EventsConfig {
  webhook: string | null;
  command: string | null;
  /** Per hook call. */
  timeoutMs: number;
  /** Events waiting for the hooks at most; more are dropped and counted. */
  queue: number;
  /** Events kept for GET /v1/events. */
  recent: number;
}

export const EVENTS_DEFAULTS: EventsConfig = { webhook: null, command: null, timeoutMs: 2000, queue: 256, recent: 1000 };

export const HEALTH_KEYS = ['type', 'port', 'interval', 'timeout', 'fast_interval', 'rise', 'fall', 'path', 'host', 'expect_status', 'body'] as const;
const HTTP_ONLY = ['path', 'host', 'expect_status', 'body'] as const;
export const SPARE_KEYS = ['name', 'exclusive', 'members'] as const;
export const SERVICE_FAILOVER_KEYS = ['spares', 'preempt', 'hold_down', 'on_backend_down'] as const;
export const SYN_CHECK_KEYS = ['enabled', 'max_age', 'timeout', 'on_fail'] as const;
export const EVENTS_KEYS = ['webhook', 'command', 'timeout', 'queue', 'recent'] as const;

// What this module needs of config.ts's checker (structural: config.ts passes itself).
export interface Entry { node: unknown; at: unknown; path: string }
export type Fields<K extends string> = Partial<Record<K, Entry>>;
export interface SectionChecker {
  readonly issues: readonly unknown[];
  fail(node: unknown, path: string, message: string): void;
  missing(parent: unknown, path: string, what: string): void;
  mapping<K extends string>(e: Entry, keys: readonly K[], what: string): Fields<K> | null;
  list(e: Entry, what: string, example: string): Entry[] | null;
  text(e: Entry, expected: string): string | undefined;
  integer(e: Entry, min: number, max: number, what: string): number | undefined;
  duration(e: Entry, fallbackMs: number): number;
  line(node: unknown): number;
}

/** true/false, or undefined (reported). */
export function bool(ck: SectionChecker, e: Entry, what: string): boolean | undefined {
  if (isScalar(e.node) && typeof e.node.value === 'boolean') return e.node.value;
  ck.fail(e.at, e.path, `expected true or false (${what})`);
  return undefined;
}

/** `false` written as the value (health: false). */
export function isFalse(e: Entry): boolean {
  return isScalar(e.node) && e.node.value === false;
}

/** A duration that may also be 0 (hold_down: 0). */
function durationOrZero(ck: SectionChecker, e: Entry, fallback: number): number {
  if (isScalar(e.node) && (e.node.value === 0 || (typeof e.node.value === 'string' && /^\s*0+(\.0*)?\s*(ms|s|m|h)?\s*$/.test(e.node.value)))) return 0;
  return ck.duration(e, fallback);
}

/**
 * A health check mapping, over `base` (the top-level default, or the built-in defaults). Returns
 * null if it has errors (reported).
 */
export function parseHealthCheck(ck: SectionChecker, e: Entry, base: HealthCheck | null): HealthCheck | null {
  const m = ck.mapping(e, HEALTH_KEYS, 'a health check like { type: tcp, port: 80, interval: 1s, timeout: 10ms, rise: 2, fall: 3 }, or false');
  if (m === null) return null;
  const errors = () => ck.issues.length;
  const before = errors();
  let type: CheckType = base?.type ?? HEALTH_DEFAULTS.type;
  if (m.type) {
    const t = ck.text(m.type, 'tcp, http or syn');
    if (t !== undefined) {
      if ((CHECK_TYPES as readonly string[]).includes(t)) type = t as CheckType;
      else ck.fail(m.type.at, m.type.path, `${JSON.stringify(t)} is not a check type; use tcp (connect), http (a GET and its status) or syn (a raw SYN probe)`);
    }
  }
  const port = m.port ? ck.integer(m.port, 1, 65535, 'health check port') ?? null : base?.port ?? null;
  const intervalMs = m.interval ? ck.duration(m.interval, HEALTH_DEFAULTS.intervalMs) : base?.intervalMs ?? HEALTH_DEFAULTS.intervalMs;
  const timeoutMs = m.timeout ? ck.duration(m.timeout, HEALTH_DEFAULTS.timeoutMs) : base?.timeoutMs ?? HEALTH_DEFAULTS.timeoutMs;
  const rise = m.rise ? ck.integer(m.rise, 1, 100, 'rise (good checks in a row to mark a backend up)') ?? 1 : base?.rise ?? HEALTH_DEFAULTS.rise;
  const fall = m.fall ? ck.integer(m.fall, 1, 100, 'fall (failed checks in a row to mark a backend down)') ?? 1 : base?.fall ?? HEALTH_DEFAULTS.fall;
  // While a backend's state is changing it is checked every quarter interval (but never more
  // often than a timeout allows), so rise/fall decide in about one interval, not rise/fall of them.
  const fastDefault = Math.min(intervalMs, Math.max(Math.round(intervalMs / 4), timeoutMs + 10));
  const explicitFast = m.fast_interval !== undefined;
  let fastIntervalMs = explicitFast ? ck.duration(m.fast_interval!, fastDefault) : (m.interval || m.timeout || !base ? fastDefault : base.fastIntervalMs);
  if (m.timeout && timeoutMs >= intervalMs) {
    ck.fail(m.timeout.at, m.timeout.path, `timeout ${timeoutMs}ms is not shorter than interval ${intervalMs}ms; a check must end before the next one starts: shorten timeout or lengthen interval`);
  } else if (!m.timeout && m.interval && timeoutMs >= intervalMs) {
    ck.fail(m.interval.at, m.interval.path, `interval ${intervalMs}ms is not longer than the timeout ${timeoutMs}ms; lengthen interval or set a shorter timeout`);
  }
  if (explicitFast && fastIntervalMs > intervalMs) {
    ck.fail(m.fast_interval!.at, m.fast_interval!.path, `fast_interval ${fastIntervalMs}ms is longer than interval ${intervalMs}ms; it is the faster interval used while a backend's state is changing`);
    fastIntervalMs = intervalMs;
  } else if (explicitFast && fastIntervalMs <= timeoutMs) {
    ck.fail(m.fast_interval!.at, m.fast_interval!.path, `fast_interval ${fastIntervalMs}ms is not longer than the timeout ${timeoutMs}ms; a check must end before the next one starts`);
  }
  let http: HttpCheck | null = type === 'http' ? (base?.http ? { ...base.http } : httpCheckDefaults()) : null;
  if (type !== 'http') {
    for (const k of HTTP_ONLY) {
      const x = m[k];
      if (x) ck.fail(x.at, x.path, `${k} only applies to type: http; remove it, or set type: http`);
    }
  } else {
    const h = http!;
    if (m.path) {
      const p = ck.text(m.path, 'a request path like /healthz');
      if (p !== undefined) {
        if (!p.startsWith('/') || /[\s\x00-\x1f]/.test(p) || p.length > 1024) ck.fail(m.path.at, m.path.path, `${JSON.stringify(p.slice(0, 60))} is not a request path; write one starting with / and without spaces, like /healthz`);
        else h.path = p;
      }
    }
    if (m.host) {
      const v = ck.text(m.host, 'a host name like www.example.com');
      if (v !== undefined) {
        if (!/^[A-Za-z0-9.:[\]-]{1,255}$/.test(v)) ck.fail(m.host.at, m.host.path, `${JSON.stringify(v.slice(0, 60))} is not a host name for the Host header; write e.g. www.example.com`);
        else h.host = v;
      }
    }
    if (m.expect_status) {
      const s = parseStatus(ck, m.expect_status);
      if (s) h.status = s;
    }
    if (m.body) {
      const b = ck.text(m.body, 'text the response body must contain');
      if (b !== undefined) {
        if (b === '' || b.length > 1024) ck.fail(m.body.at, m.body.path, 'body must be 1..1024 characters the response must contain');
        else h.body = b;
      }
    }
    http = h;
  }
  if (errors() > before) return null;
  return { type, port, intervalMs, timeoutMs, fastIntervalMs, rise, fall, http };
}

/** expect_status: 200, "2xx", or a list of those. */
function parseStatus(ck: SectionChecker, e: Entry): Array<[number, number]> | null {
  const one = (x: Entry): [number, number] | null => {
    if (isScalar(x.node) && typeof x.node.value === 'number') {
      const v = ck.integer(x, 100, 599, 'an HTTP status');
      return v === undefined ? null : [v, v];
    }
    const t = ck.text(x, 'an HTTP status like 200 or a class like 2xx');
    if (t === undefined) return null;
    const m = /^([1-5])xx$/i.exec(t);
    if (m) return [Number(m[1]) * 100, Number(m[1]) * 100 + 99];
    ck.fail(x.at, x.path, `${JSON.stringify(t)} is not a status; write 200, 2xx, or a list like [200, 204]`);
    return null;
  };
  if (isScalar(e.node)) { const r = one(e); return r ? [r] : null; }
  const items = ck.list(e, 'statuses', 'expect_status: [200, 204]');
  if (!items) return null;
  if (items.length === 0) { ck.fail(e.at, e.path, 'the list is empty; list the accepted statuses, e.g. [200, 204]'); return null; }
  const out = items.map(one);
  return out.every((x) => x !== null) ? (out as Array<[number, number]>) : null;
}

/** The top-level `health`: a default check for every backend, or false (none). */
export function parseDefaultHealth(ck: SectionChecker, e: Entry | undefined): HealthCheck | null {
  if (!e || isFalse(e)) return null;
  return parseHealthCheck(ck, e, null);
}

/** A backend's `health`: false (never checked), a mapping over the default, or absent (the default). */
export function parseBackendHealth(ck: SectionChecker, e: Entry | undefined, dflt: HealthCheck | null): HealthCheck | null {
  if (!e) return dflt;
  if (isFalse(e)) return null;
  return parseHealthCheck(ck, e, dflt);
}

/** `spares:` pools. `backendNames` are the valid config backends. */
export function parseSpares(ck: SectionChecker, e: Entry | undefined, backendNames: ReadonlySet<string>, namesWritten: ReadonlySet<string>): SparePool[] {
  if (!e) return [];
  const items = ck.list(e, 'spare pools', 'spares: [{ name: pool1, exclusive: true, members: [web3, web4] }]');
  if (!items) return [];
  const pools: SparePool[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const m = ck.mapping(item, SPARE_KEYS, 'a spare pool like { name: pool1, exclusive: true, members: [web3] }');
    if (!m) return;
    let ok = true;
    let name: string | undefined;
    if (!m.name) { ck.missing(item.node, `${item.path}.name`, 'name the pool, e.g. name: pool1 (services refer to it with spares: pool1)'); ok = false; } else {
      name = ck.text(m.name, 'a pool name like pool1');
      if (name !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) { ck.fail(m.name.at, m.name.path, `${JSON.stringify(name)} is not a valid pool name; use 1-64 characters from A-Z a-z 0-9 _ . -`); ok = false; }
      else if (name !== undefined && seen.has(name)) { ck.fail(m.name.at, m.name.path, `pool ${name} is defined twice (also spares[${seen.get(name)}]); give each pool its own name`); ok = false; }
      else if (name === undefined) ok = false;
      else seen.set(name, index);
    }
    const exclusive = m.exclusive ? bool(ck, m.exclusive, 'exclusive: a spare serves one service of the pool at a time') ?? false : false;
    const members: string[] = [];
    if (!m.members) { ck.missing(item.node, `${item.path}.members`, 'list the spare backends, highest priority first, e.g. members: [web3, web4]'); ok = false; } else {
      const list = ck.list(m.members, 'backend names', 'members: [web3, web4]');
      if (list && list.length === 0) { ck.fail(m.members.at, m.members.path, 'the list is empty; list at least one spare backend'); ok = false; }
      list?.forEach((x) => {
        const n = ck.text(x, 'a backend name like web3');
        if (n === undefined) { ok = false; return; }
        if (!backendNames.has(n)) {
          if (!namesWritten.has(n)) ck.fail(x.at, x.path, `unknown backend ${JSON.stringify(n)} (defined backends: ${[...backendNames].join(', ') || 'none'}); a spare must be a backend from backends:`);
          ok = false; return;
        }
        if (members.includes(n)) { ck.fail(x.at, x.path, `${n} is listed twice; list each spare once, highest priority first`); ok = false; return; }
        members.push(n);
      });
    }
    if (ok && name !== undefined) pools.push({ name, exclusive, members, line: ck.line(item.at) });
  });
  return pools;
}

/** A service's failover keys. `pools` are the valid pools; `poolsWritten` the names written (to avoid follow-on errors). */
export function parseServiceFailover(ck: SectionChecker, s: Fields<typeof SERVICE_FAILOVER_KEYS[number]>, pools: readonly SparePool[], poolsBroken: boolean): ServiceFailover | null {
  const out: ServiceFailover = { ...FAILOVER_DEFAULTS };
  let ok = true;
  if (s.spares) {
    const n = ck.text(s.spares, 'the name of a spare pool from spares:');
    if (n === undefined) ok = false;
    else if (!pools.some((p) => p.name === n)) {
      if (!poolsBroken) ck.fail(s.spares.at, s.spares.path, `no spare pool named ${JSON.stringify(n)} (pools: ${pools.map((p) => p.name).join(', ') || 'none'}); define it under spares: or fix the name`);
      ok = false;
    } else out.spares = n;
  }
  if (s.preempt) { const b = bool(ck, s.preempt, 'preempt: true returns new flows to the original member once it is back'); if (b === undefined) ok = false; else out.preempt = b; }
  if (s.hold_down) out.holdDownMs = durationOrZero(ck, s.hold_down, 0);
  if (s.on_backend_down) {
    const t = ck.text(s.on_backend_down, 'reset or keep');
    if (t === 'reset' || t === 'keep') out.onBackendDown = t;
    else if (t !== undefined) { ck.fail(s.on_backend_down.at, s.on_backend_down.path, `${JSON.stringify(t)} is not a policy; use reset (clients of a dead backend get an RST at their next packet) or keep (its flows stay, for a backend expected back soon)`); ok = false; }
    else ok = false;
  }
  return ok ? out : null;
}

/** `syn_check:`; null when absent or enabled: false. */
export function parseSynCheck(ck: SectionChecker, e: Entry | undefined): SynCheckConfig | null {
  if (!e || isFalse(e)) return null;
  const m = ck.mapping(e, SYN_CHECK_KEYS, 'a mapping like { enabled: true, max_age: 2s, timeout: 20ms, on_fail: next }');
  if (!m) return null;
  const enabled = m.enabled ? bool(ck, m.enabled, 'enabled') ?? false : true;
  const out: SynCheckConfig = { maxAgeMs: 2000, timeoutMs: 20, onFail: 'next' };
  if (m.max_age) out.maxAgeMs = ck.duration(m.max_age, out.maxAgeMs);
  if (m.timeout) out.timeoutMs = ck.duration(m.timeout, out.timeoutMs);
  if (m.on_fail) {
    const t = ck.text(m.on_fail, 'next or reset');
    if (t === 'next' || t === 'reset') out.onFail = t;
    else if (t !== undefined) ck.fail(m.on_fail.at, m.on_fail.path, `${JSON.stringify(t)} is not a choice; use next (send the held SYN to the next usable member or spare) or reset (answer the client with RST)`);
  }
  return enabled ? out : null;
}

/** `events:`. */
export function parseEvents(ck: SectionChecker, e: Entry | undefined): EventsConfig {
  const out: EventsConfig = { ...EVENTS_DEFAULTS };
  if (!e) return out;
  const m = ck.mapping(e, EVENTS_KEYS, 'a mapping like { webhook: "http://127.0.0.1:9000/hook" } or { command: "/usr/local/bin/on-event" }');
  if (!m) return out;
  if (m.webhook) {
    const u = ck.text(m.webhook, 'an http:// or https:// URL');
    if (u !== undefined) {
      let url: URL | null = null;
      try { url = new URL(u); } catch { /* reported below */ }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) ck.fail(m.webhook.at, m.webhook.path, `${JSON.stringify(u.slice(0, 80))} is not an http:// or https:// URL; write e.g. "http://127.0.0.1:9000/hook"`);
      else out.webhook = url.toString();
    }
  }
  if (m.command) {
    const c = ck.text(m.command, 'a command line run with /bin/sh -c');
    if (c !== undefined) {
      if (c.trim() === '') ck.fail(m.command.at, m.command.path, 'the command is empty; give a command line (run with /bin/sh -c, the event as JSON on its stdin)');
      else out.command = c;
    }
  }
  if (m.timeout) out.timeoutMs = ck.duration(m.timeout, out.timeoutMs);
  if (m.queue) out.queue = ck.integer(m.queue, 1, 100_000, 'events.queue (events waiting for the hooks)') ?? out.queue;
  if (m.recent) out.recent = ck.integer(m.recent, 1, 100_000, 'events.recent (events kept for vipgate events)') ?? out.recent;
  return out;
}
