// The event log (the patent's "notify the user"): every transition — health up/down, failover,
// fail-back, a switch, SYN-time check verdicts — is one structured log line, a count per type
// (metrics), an entry in a bounded list of recent events (GET /v1/events, `vipgate events`), and
// a call of the configured webhook (HTTP POST of the event as JSON) and/or command.
//
// emit() is synchronous and cheap: it never waits for a hook. Hooks run one event at a time from
// a bounded queue, each call with a timeout; what overflows the queue and every failed call is
// counted (and logged), so a slow or dead hook never delays the packet path or the next check.

import * as http from 'node:http';
import * as https from 'node:https';
import { spawn } from 'node:child_process';
import type { EventSink } from './types';
import type { EventsConfig } from '../config/health';

export interface VgEvent {
  /** 1, 2, 3, ... since start: `vipgate events --follow` asks for what came after the last it saw. */
  seq: number;
  /** ISO 8601 time of the event. */
  time: string;
  type: string;
  /** One line for people. */
  message: string;
  [field: string]: unknown;
}

export interface EventPage {
  events: VgEvent[];
  /** Pass as `since` to get what comes next. */
  next: number;
  /** Events after `since` that are no longer in the recent list (it holds `events.recent`). */
  missed?: number;
}

export interface HookStats { sent: number; failed: number; dropped: number; queued: number }

type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface EventLogOptions {
  config: EventsConfig;
  log?: Log;
  clock?: () => number;
}

/** Events logged at warn: something stopped working (a syn_check summary when a probe failed). */
const WARN_TYPES = new Set(['health_down', 'failover', 'no_backend', 'cluster_peer_dead', 'cluster_split_brain']);
const isWarn = (type: string, f: Record<string, unknown>): boolean =>
  WARN_TYPES.has(type) || (type === 'syn_check' && typeof f.probes_failed === 'number' && f.probes_failed > 0);

function describe(type: string, f: Record<string, unknown>): string {
  const list = (v: unknown) => (Array.isArray(v) ? (v.length ? v.join('+') : 'none') : String(v));
  switch (type) {
    case 'health_up': case 'health_down':
      return `backend ${f.backend} ${f.from} -> ${f.to}${f.reason ? ` (${f.reason})` : ''}`;
    case 'failover': return `service ${f.service}: failover ${list(f.from)} -> ${list(f.to)}`;
    case 'failback': return `service ${f.service}: fail-back ${list(f.from)} -> ${list(f.to)}`;
    case 'failback_scheduled': return `service ${f.service}: fail-back ${list(f.from)} -> ${list(f.to)} after the hold-down, at ${f.at}`;
    case 'no_backend': return `service ${f.service}: no usable backend (was ${list(f.from)}); new connections are dropped`;
    case 'restored': return `service ${f.service}: served again by ${list(f.to)}`;
    case 'switch': return `service ${f.service}: switched to ${f.to ?? 'priority order'} (${f.by ?? 'api'})`;
    case 'cluster_peer_alive': return `cluster: ${f.node} is alive`;
    case 'cluster_peer_dead': return `cluster: ${f.node} declared dead (silent for ${f.silent_ms} ms, over its ${f.dead_after_ms} ms)`;
    case 'cluster_peer_restarted': return `cluster: ${f.node} restarted (a new incarnation)`;
    case 'cluster_synced': return `cluster: caught up with the peers' flows (${f.how === 'alone' ? 'no peer alive' : f.how === 'snapshots' ? 'every live peer\'s snapshot imported' : `gave up waiting: ${f.how}`}); this node may own VIPs now`;
    case 'cluster_takeover': return `cluster: taking over ${list(f.vips)} (from ${list(f.from)}); announcing with gratuitous ARP`;
    case 'cluster_release': return `cluster: no longer answering for ${list(f.vips)} (now ${list(f.to)})`;
    case 'cluster_split_brain': return `cluster: ${list(f.vips)} also claimed by another node (a partition healed?); the ownership rule keeps it here: re-announcing`;
    default: return `${type} ${Object.entries(f).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}`;
  }
}

export class EventLog implements EventSink {
  private readonly ring: VgEvent[] = [];
  private seq = 0;
  private readonly counts = new Map<string, number>();
  private readonly queue: VgEvent[] = [];
  private running = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly stats = { sent: 0, failed: 0, dropped: 0 };
  /** Aborted by close(): ends the hook call in flight (a command's process group, a webhook's request). */
  private readonly stop = new AbortController();
  private readonly cfg: EventsConfig;
  private readonly log: Log;
  private readonly clock: () => number;

  constructor(o: EventLogOptions) {
    this.cfg = o.config;
    this.log = o.log ?? (() => {});
    this.clock = o.clock ?? Date.now;
  }

  emit(type: string, fields: Record<string, unknown>, now: number = this.clock()): void {
    try {
      const ev: VgEvent = { seq: ++this.seq, time: new Date(now).toISOString(), type, message: describe(type, fields), ...fields };
      this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
      this.ring.push(ev);
      if (this.ring.length > this.cfg.recent) this.ring.splice(0, this.ring.length - this.cfg.recent);
      this.log(isWarn(type, fields) ? 'warn' : 'info', ev.message, { event: type, ...fields });
      for (const w of [...this.waiters]) w();
      if (this.cfg.webhook || this.cfg.command) {
        if (this.queue.length >= this.cfg.queue) {
          this.stats.dropped++;
          if (this.stats.dropped === 1 || this.stats.dropped % 100 === 0) {
            this.log('warn', `event hooks are behind: ${this.stats.dropped} event(s) dropped from the queue of ${this.cfg.queue} (the hook is slow or failing)`, { event: 'event_hook_dropped', dropped: this.stats.dropped });
          }
        } else {
          this.queue.push(ev);
          void this.drain();
        }
      }
    } catch {
      // emit() never throws (EventSink): a broken log stream must not break the checker or the
      // controller that reported the transition; the event itself is already in the list.
    }
  }

  /** Events after `since` (oldest first), at most `limit`. */
  since(since: number, limit = 1000): EventPage {
    const out = this.ring.filter((e) => e.seq > since).slice(0, limit);
    const missed = Math.max(0, this.firstSeq() - 1 - since);
    return { events: out, next: out.length ? out[out.length - 1]!.seq : Math.max(since, this.firstSeq() - 1), ...(missed ? { missed } : {}) };
  }

  private firstSeq(): number { return this.ring.length ? this.ring[0]!.seq : this.seq + 1; }

  /** Resolves once an event after `since` exists, or after `ms`, or at close. */
  wait(since: number, ms: number): Promise<void> {
    if (this.seq > since || this.closed || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); this.waiters.delete(done); resolve(); };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** Events emitted so far, by type. */
  typeCounts(): Array<{ type: string; count: number }> {
    return [...this.counts].map(([type, count]) => ({ type, count }));
  }

  hookStats(): HookStats { return { ...this.stats, queued: this.queue.length }; }

  /**
   * Stop calling hooks (queued events are dropped, uncounted; the call in flight is ended: a
   * command hook runs in its own process group, which would otherwise outlive vipgate) and
   * release waiting readers.
   */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.stop.abort();
    for (const w of [...this.waiters]) w();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length && !this.closed) {
        const ev = this.queue.shift()!;
        const body = JSON.stringify(ev);
        const calls: Array<Promise<string | null>> = [];
        if (this.cfg.webhook) calls.push(postJson(this.cfg.webhook, body, this.cfg.timeoutMs, this.stop.signal));
        if (this.cfg.command) calls.push(runCommand(this.cfg.command, body, ev.type, this.cfg.timeoutMs, this.stop.signal));
        for (const why of await Promise.all(calls)) {
          if (why === null) this.stats.sent++;
          else {
            this.stats.failed++;
            this.log('warn', `event hook failed for event ${ev.seq} (${ev.type}): ${why}`, { event: 'event_hook_failed', seq: ev.seq, reason: why });
          }
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/** POST the event; null when the hook answered 2xx, else why not. */
export function postJson(url: string, body: string, timeoutMs: number, signal?: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    const onAbort = () => finish(`webhook ${url}: not waited for (vipgate is stopping)`);
    const finish = (why: string | null) => {
      if (done) return;
      done = true; clearTimeout(timer); signal?.removeEventListener('abort', onAbort); req.destroy(); resolve(why);
    };
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? https : http).request(u, {
      method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'vipgate-events' },
    }, (res) => {
      res.resume();
      const st = res.statusCode ?? 0;
      res.on('end', () => finish(st >= 200 && st < 300 ? null : `webhook ${url} answered ${st}`));
      res.on('error', (e) => finish(`webhook ${url}: ${e.message}`));
    });
    const timer = setTimeout(() => finish(`webhook ${url} did not answer within ${timeoutMs} ms`), timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish(`webhook ${url}: ${e.code ?? e.message}`));
    if (signal?.aborted) onAbort(); else signal?.addEventListener('abort', onAbort);
    req.end(body);
  });
}

/** Run the command with /bin/sh -c, the event as JSON on stdin and in $VIPGATE_EVENT_JSON; null when it exits 0. */
export function runCommand(command: string, body: string, type: string, timeoutMs: number, signal?: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    let done = false;
    let err = '';
    // Its own process group, so a timeout ends the shell and whatever it started (by group id).
    const child = spawn('/bin/sh', ['-c', command], {
      detached: true,
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, VIPGATE_EVENT: type, VIPGATE_EVENT_JSON: body },
    });
    // Ends the process group this call started, by its id (the child's PID).
    const kill = () => { if (child.pid !== undefined) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } } };
    const onAbort = () => { kill(); finish('command killed: vipgate is stopping'); };
    const finish = (why: string | null) => {
      if (done) return;
      done = true; clearTimeout(timer); signal?.removeEventListener('abort', onAbort); resolve(why);
    };
    const timer = setTimeout(() => { kill(); finish(`command did not finish within ${timeoutMs} ms (killed)`); }, timeoutMs);
    if (signal?.aborted) onAbort(); else signal?.addEventListener('abort', onAbort);
    child.stderr!.on('data', (d: Buffer) => { if (err.length < 500) err += d.toString(); });
    child.on('error', (e) => finish(`command: ${e.message}`));
    child.on('exit', (code, sig) => finish(code === 0 ? null : `command exited ${code ?? sig}${err.trim() ? `: ${err.trim().slice(0, 200)}` : ''}`));
    child.stdin!.on('error', () => { /* the command need not read its stdin */ });
    child.stdin!.end(body);
  });
}
