// `vipgate agent`: runs beside a server application on a backend host and keeps that host
// registered with vipgate for as long as it runs (and, with --health-cmd, only while it is healthy).
//
//   1. With --health-cmd: wait until the command first exits 0 (it runs under /bin/sh -c, and is
//      killed if it takes longer than --health-interval).
//   2. Register: POST /v1/backends with a lease. Re-POST the same body every --renew, which
//      renews the lease; if the agent dies, vipgate drains the backend when the lease runs out.
//   3. While the API cannot be reached (or answers 5xx), retry with backoff from 1s doubling up
//      to --renew; log once per change of condition, never exit. A 4xx on register is a
//      configuration mistake (name taken, defined in the config file, invalid field, bad token):
//      log it and exit 2 -- retrying cannot fix it.
//   4. With --health-cmd, keep checking: after 3 consecutive failures PATCH state=drain (existing
//      flows continue, no new ones); once it passes again PATCH state=up. Only transitions are
//      applied, so an operator's `vipgate set` is not undone at every renewal.
//   5. SIGTERM/SIGINT: DELETE /v1/backends/NAME (the backend drains and is removed when its flows
//      end), exit 0 -- also when the API is unreachable then (with a warning: the lease expiry
//      drains it instead).

import { spawn, ChildProcess } from 'node:child_process';
import type { AdminState, BackendView, RegisterRequest } from '../control/api-types';
import { LEASE } from '../control/api-types';
import { createLogger, Logger, LogLevel } from '../obs/log';
import { humanDuration } from './table';
import {
  ApiClient, ClientError, CONNECT_OPTIONS, UsageError, checkDuration, checkSeconds,
  clientFrom, parseCommand, registerBody, reportClientError, processIo,
} from './client';

export const AGENT_USAGE = 'vipgate agent --name N --ip IP [--mac MAC] --serves VIP[:PORT]... [--priority P] [--weight W]\n' +
  '      [--api HOST:PORT] [--token T] [--lease 30] [--renew 10s] [--health-cmd CMD] [--health-interval 5s]\n' +
  '      [--log-format json|text] [--log-level info]';

/** Consecutive health check failures before the backend is drained. */
export const HEALTH_FAILURES_TO_DRAIN = 3;
export const DEFAULT_LEASE_S = 30;
export const DEFAULT_HEALTH_INTERVAL_MS = 5000;
const FIRST_BACKOFF_MS = 1000;

export interface AgentOptions {
  client: ApiClient;
  body: RegisterRequest;
  renewMs: number;
  healthCmd?: string | undefined;
  healthIntervalMs: number;
  log: Logger;
}

interface HealthResult { ok: boolean; detail: string }

/** Run `cmd` under /bin/sh -c; ok when it exits 0 within `timeoutMs`. */
export function runHealthCheck(cmd: string, timeoutMs: number, track: (c: ChildProcess | null) => void): Promise<HealthResult> {
  return new Promise((resolve) => {
    // Its own process group, so a timeout kills whatever the shell started too.
    const child = spawn('/bin/sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    track(child);
    let output = '';
    const keep = (d: Buffer) => { output = (output + d.toString('utf8')).slice(-300); };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(child); }, timeoutMs);
    let done = false;
    const finish = (r: HealthResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      track(null);
      resolve(r);
    };
    child.on('error', (e) => finish({ ok: false, detail: `could not run /bin/sh: ${e.message}` }));
    child.on('close', (code, signal) => {
      const out = output.trim().replace(/\s*\n\s*/g, ' | ');
      const why = timedOut ? `timed out after ${humanDuration(timeoutMs)}` : signal ? `killed by ${signal}` : `exit status ${code}`;
      finish({ ok: code === 0 && !timedOut, detail: out ? `${why}: ${out}` : why });
    });
  });
}

function killGroup(c: ChildProcess): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try { process.kill(-c.pid, 'SIGKILL'); } catch { try { c.kill('SIGKILL'); } catch { /* already gone */ } }
}

export class Agent {
  private readonly o: AgentOptions;
  private readonly log: Logger;
  private readonly name: string;

  /** A registration has been attempted (the health check passed, or there is none). */
  private registering = false;
  /** A POST has succeeded at least once. */
  private registered = false;
  /** Why the API last failed; null while it answers. Logged only when it changes. */
  private apiProblem: string | null = null;
  private backoffMs: number;

  private healthFailures = 0;
  /** The last check's verdict; null before the first. */
  private healthy: boolean | null = null;
  /** What health asks for: drain after HEALTH_FAILURES_TO_DRAIN failures, up once passing again. */
  private desired: 'up' | 'drain' = 'up';
  /** A state transition not yet applied (the API was unreachable). */
  private pending: AdminState | null = null;
  private patchQueued = false;

  private renewTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private healthChild: ChildProcess | null = null;
  /** API calls one at a time, in order: a DELETE at shutdown waits for an in-flight POST. */
  private chain: Promise<void> = Promise.resolve();
  private stopping = false;
  private finished = false;
  private resolveDone!: (code: number) => void;
  readonly done: Promise<number>;

  constructor(o: AgentOptions) {
    this.o = o;
    this.name = o.body.name;
    this.log = o.log;
    this.backoffMs = Math.min(FIRST_BACKOFF_MS, o.renewMs);
    this.done = new Promise((r) => { this.resolveDone = r; });
  }

  start(): Promise<number> {
    const b = this.o.body;
    this.log.info('agent started', {
      backend: this.name, ip: b.ip, serves: b.serves, api: this.o.client.where, lease: b.lease,
      renew: humanDuration(this.o.renewMs), ...(this.o.healthCmd ? { healthCmd: this.o.healthCmd, healthInterval: humanDuration(this.o.healthIntervalMs) } : {}),
    });
    if (this.o.healthCmd) {
      this.log.info('waiting for the health check to pass before registering', { backend: this.name, healthCmd: this.o.healthCmd });
      this.scheduleHealth(0);
    } else {
      this.startRegistering();
    }
    return this.done;
  }

  // ---- registration and renewal ----

  private startRegistering(): void {
    this.registering = true;
    this.scheduleRenew(0);
  }

  private scheduleRenew(ms: number): void {
    if (this.stopping) return;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => { this.renewTimer = null; this.enqueue(() => this.post()); }, ms);
  }

  private enqueue(f: () => Promise<void>): void {
    this.chain = this.chain.then(() => (this.stopping ? undefined : f())).catch((e: unknown) => {
      // A bug, not an API failure (those are handled where they happen): log it, keep running.
      this.log.error('internal error in the agent (a bug; please report it)', { err: e instanceof Error ? e : new Error(String(e)) });
    });
  }

  private async post(): Promise<void> {
    if (this.stopping) return;
    let r;
    try {
      r = await this.o.client.request<{ backend: BackendView; created: boolean }>('POST', '/backends', this.o.body);
    } catch (e) {
      if (!(e instanceof ClientError)) throw e;
      if (this.stopping) return;
      if (!e.unreachable && e.exitCode === 2) {
        this.log.error(`registration refused: ${e.lines.map((l) => l.replace(/^vipgate: /, '')).join('; ')}`, {
          backend: this.name, code: e.code, status: e.status, ...(e.body?.field ? { field: e.body.field } : {}),
        });
        this.log.error('this is a configuration mistake (retrying cannot fix it): fix the agent\'s arguments or vipgate\'s config, then start the agent again');
        this.finish(2);
        return;
      }
      this.apiFailed(e);
      this.scheduleRenew(this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.o.renewMs);
      return;
    }
    if (this.stopping) return;
    const { backend, created } = r.body;
    const fields = { backend: this.name, created, state: backend?.state, lease: backend?.lease?.seconds };
    if (!this.registered) this.log.info(created ? 'registered' : 'registered (renewed an existing registration)', fields);
    else if (created) this.log.warn('registered again: the registration was gone (vipgate restarted without its state, the lease ran out, or it was unregistered)', fields);
    else if (this.apiProblem !== null) this.log.info('the API answers again; registration renewed', fields);
    else this.log.debug('lease renewed', fields);
    this.registered = true;
    this.apiProblem = null;
    this.backoffMs = Math.min(FIRST_BACKOFF_MS, this.o.renewMs);
    // A fresh registration starts up: if health says drain, say it again (and nothing else).
    if (created) this.pending = this.desired === 'drain' ? 'drain' : null;
    if (this.pending) await this.patch();
    this.scheduleRenew(this.o.renewMs);
  }

  private apiFailed(e: ClientError): void {
    const why = e.lines[0]!.replace(/^vipgate: /, '');
    if (why !== this.apiProblem) {
      this.log.warn(`${why}; retrying in ${humanDuration(this.backoffMs)}, backing off to every ${humanDuration(this.o.renewMs)}`, { backend: this.name, code: e.code, ...(e.status ? { status: e.status } : {}) });
    }
    this.apiProblem = why;
  }

  /** Apply `pending` (a health transition). Unreachable: keep it for the next try. */
  private async patch(): Promise<void> {
    const state = this.pending;
    if (!state || this.stopping) return;
    try {
      await this.o.client.request('PATCH', `/backends/${encodeURIComponent(this.name)}`, { state });
    } catch (e) {
      if (!(e instanceof ClientError)) throw e;
      if (e.unreachable || e.exitCode === 1) { this.apiFailed(e); return; }
      // 404: the registration is gone (the next renewal recreates it and re-applies a drain).
      this.log.warn(`could not set state ${state}: ${e.lines[0]!.replace(/^vipgate: /, '')}`, { backend: this.name, code: e.code });
      if (this.pending === state) this.pending = null;
      return;
    }
    if (this.pending === state) this.pending = null;
    this.log.info(state === 'drain'
      ? `drained: the health check failed ${this.healthFailures} times in a row; existing flows continue, no new ones`
      : 'back up: the health check passes again', { backend: this.name, state });
  }

  // ---- health ----

  private scheduleHealth(ms: number): void {
    if (this.stopping) return;
    this.healthTimer = setTimeout(() => { this.healthTimer = null; void this.checkHealth(); }, ms);
  }

  private async checkHealth(): Promise<void> {
    const cmd = this.o.healthCmd!;
    const r = await runHealthCheck(cmd, this.o.healthIntervalMs, (c) => { this.healthChild = c; });
    if (this.stopping) return;
    if (r.ok) {
      if (this.healthy === false) this.log.info('health check passes', { backend: this.name, after: `${this.healthFailures} failure${this.healthFailures === 1 ? '' : 's'}` });
      else if (this.healthy === null) this.log.info('health check passes', { backend: this.name });
      this.healthy = true;
      this.healthFailures = 0;
      if (!this.registering) this.startRegistering();
      else if (this.desired === 'drain') { this.desired = 'up'; this.pending = 'up'; }
    } else {
      this.healthFailures++;
      if (this.healthy !== false) this.log.warn(`health check failed: ${r.detail}`, { backend: this.name, healthCmd: cmd });
      else this.log.debug(`health check failed: ${r.detail}`, { backend: this.name, failures: this.healthFailures });
      this.healthy = false;
      if (this.registering && this.desired === 'up' && this.healthFailures >= HEALTH_FAILURES_TO_DRAIN) {
        this.desired = 'drain';
        this.pending = 'drain';
      }
    }
    // One PATCH queued at a time, however slow the API is to answer.
    if (this.pending && this.registered && !this.patchQueued) {
      this.patchQueued = true;
      this.enqueue(async () => { this.patchQueued = false; await this.patch(); });
    }
    this.scheduleHealth(this.o.healthIntervalMs);
  }

  // ---- shutdown ----

  /** SIGTERM/SIGINT: unregister (drain), then resolve `done` with 0. A second signal exits at once. */
  async stop(signal: string): Promise<void> {
    if (this.finished) return;
    if (this.stopping) {
      this.log.warn(`${signal} again: exiting without waiting for the API`, { backend: this.name });
      this.finish(0);
      return;
    }
    this.stopping = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.healthTimer) clearTimeout(this.healthTimer);
    if (this.healthChild) killGroup(this.healthChild);
    if (!this.registering) {
      this.log.info(`${signal}: stopping (never registered: nothing to unregister)`, { backend: this.name });
      this.finish(0);
      return;
    }
    this.log.info(`${signal}: unregistering`, { backend: this.name });
    await this.chain;
    if (this.finished) return;
    try {
      const r = await this.o.client.request<{ backend: BackendView }>('DELETE', `/backends/${encodeURIComponent(this.name)}`);
      const flows = r.body.backend?.flows ?? 0;
      this.log.info(flows > 0 ? `unregistered: draining, ${flows} flow${flows === 1 ? '' : 's'} left; removed when they end` : 'unregistered', { backend: this.name, flows });
    } catch (e) {
      if (!(e instanceof ClientError)) throw e;
      const why = e.lines[0]!.replace(/^vipgate: /, '');
      if (e.code === 'EAPI_UNKNOWN_BACKEND') this.log.info('not registered (nothing to unregister)', { backend: this.name });
      else if (e.unreachable || e.exitCode === 1) {
        const lease = this.o.body.lease;
        this.log.warn(`could not unregister: ${why}; ${lease ? `vipgate drains it when its lease runs out (within ${lease}s)` : 'it stays registered'}`, { backend: this.name, code: e.code });
      } else this.log.warn(`could not unregister: ${why}`, { backend: this.name, code: e.code });
    }
    this.finish(0);
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.stopping = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    if (this.healthTimer) clearTimeout(this.healthTimer);
    if (this.healthChild) killGroup(this.healthChild);
    this.resolveDone(code);
  }
}

/** `vipgate agent ...`: parse, then run until a signal (0) or a refused registration (2). */
export async function runAgent(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const io = processIo();
  let opts: AgentOptions;
  try {
    const { values, positionals } = parseCommand('agent', args, {
      ...CONNECT_OPTIONS, name: { type: 'string' }, ip: { type: 'string' }, mac: { type: 'string' },
      serves: { type: 'string', multiple: true }, priority: { type: 'string' }, weight: { type: 'string' },
      lease: { type: 'string' }, renew: { type: 'string' }, 'health-cmd': { type: 'string' }, 'health-interval': { type: 'string' },
      'log-format': { type: 'string' }, 'log-level': { type: 'string' },
    }, AGENT_USAGE);
    if (positionals.length) throw new UsageError(`vipgate agent: unexpected argument "${positionals[0]}"\nusage: ${AGENT_USAGE}`);
    const lease = values.lease === undefined ? DEFAULT_LEASE_S : checkSeconds(values.lease, '--lease', 1, LEASE.max);
    const renewMs = values.renew === undefined ? Math.round((lease * 1000) / 3) : checkDuration(values.renew, '--renew', 100);
    if (renewMs >= lease * 1000) throw new UsageError(`--renew ${values.renew} must be shorter than the lease (${lease}s), or the registration lapses between renewals; e.g. --renew ${humanDuration(Math.round((lease * 1000) / 3))}`);
    const body = registerBody('agent', AGENT_USAGE, values, lease);
    const healthCmd = values['health-cmd'];
    if (healthCmd !== undefined && healthCmd.trim() === '') throw new UsageError('--health-cmd: give a shell command, e.g. --health-cmd \'curl -fsS http://127.0.0.1:8080/healthz\'');
    const healthIntervalMs = values['health-interval'] === undefined ? DEFAULT_HEALTH_INTERVAL_MS : checkDuration(values['health-interval'], '--health-interval', 100);
    const format = values['log-format'] ?? 'json';
    if (format !== 'json' && format !== 'text') throw new UsageError(`--log-format: must be json or text, got "${format}"`);
    const level = values['log-level'] ?? 'info';
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`--log-level: must be one of debug, info, warn, error, got "${level}"`);
    opts = {
      client: clientFrom(values, env), body, renewMs, healthCmd, healthIntervalMs,
      log: createLogger({ level: level as LogLevel, format }),
    };
  } catch (e) {
    return reportClientError(e, io);
  }

  const agent = new Agent(opts);
  const onTerm = () => { void agent.stop('SIGTERM'); };
  const onInt = () => { void agent.stop('SIGINT'); };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  try {
    return await agent.start();
  } finally {
    process.removeListener('SIGTERM', onTerm);
    process.removeListener('SIGINT', onInt);
  }
}
