// The runtime API's client side: `vipgate status|backends|services|vips|neighbours|flows|
// register|unregister|switch|set|reload` (and the HTTP client that `vipgate top` and
// `vipgate agent` share). The contract is control/api-types.ts.
//
// Arguments are checked here before any request, so a typo costs no round trip and exits 2
// with what to fix. API errors print the server's message (it says what to do) and exit 2 for
// a 4xx (the request is wrong) or 1 for a 5xx, a timeout or an unreachable API.

import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs, ParseArgsConfig } from 'node:util';
import * as path from 'node:path';
import {
  API_ENV, API_PREFIX, DEFAULT_API_LISTEN, TOKEN_ENV, SET_STATES, RoleState, PRIORITY, WEIGHT, LEASE,
  AdminState, ApiErrorBody, BackendView, FlowPage, FlowQuery, FlowView, NeighbourView, RegisterRequest,
  ReloadResult, ServiceView, ClusterView, SetBackendRequest, StatusView, VipView, WorkerView,
} from '../control/api-types';
import type { VgEvent, EventPage } from '../control/health/events';
import { parseDuration } from '../control/config';
import { parseIpv4, parseMac } from '../wire/addr';
import { formatPairs, formatTable, humanCount, humanSeconds } from './table';

// ---------------------------------------------------------------------------------------------
// Errors

/** A user's mistake on the command line: print the message, exit 2. Nothing was sent. */
export class UsageError extends Error {}

/** A request that did not succeed; `lines` go to stderr as they are, `exitCode` is the status. */
export class ClientError extends Error {
  constructor(readonly lines: string[], readonly exitCode: 1 | 2, readonly code: string, readonly status: number | null = null, readonly body: ApiErrorBody | null = null) {
    super(lines.join('\n'));
    this.name = 'ClientError';
  }
  /** The API was not reached or did not answer (as opposed to answering with an error). */
  get unreachable(): boolean { return this.status === null; }
}

// ---------------------------------------------------------------------------------------------
// Address, token, HTTP

export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The API's base URL from --api (HOST:PORT, or an http:// or https:// URL), else $VIPGATE_API,
 * else 127.0.0.1:9180. Throws UsageError for anything else.
 */
export function apiBase(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): URL {
  const given = flag ?? (env[API_ENV] || undefined);
  const text = given ?? DEFAULT_API_LISTEN;
  const from = flag !== undefined ? '--api' : given !== undefined ? API_ENV : 'the default';
  const bad = () => new UsageError(`${from}: "${text}" is not an API address; give HOST:PORT (e.g. 127.0.0.1:9180) or an http:// URL`);
  let url: URL;
  if (/^https?:\/\//i.test(text)) {
    try { url = new URL(text); } catch { throw bad(); }
  } else {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
    if (!m) throw bad();
    try { url = new URL(`http://${m[1]}:${m[2]}`); } catch { throw bad(); }
  }
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  if (!(port >= 1 && port <= 65535) || url.search || url.hash || url.username) throw bad();
  return url;
}

/** The base URL's path without a trailing slash: "" or a reverse proxy's prefix like "/vipgate". */
function basePath(base: URL): string {
  return base.pathname.replace(/\/+$/, '');
}

/** What a person would type back: "127.0.0.1:9180" for plain http, else the URL. */
export function describeBase(base: URL): string {
  return base.protocol === 'http:' && basePath(base) === '' ? base.host : base.origin + basePath(base);
}

export interface ClientOptions {
  base: URL;
  token?: string | undefined;
  timeoutMs?: number;
}

export interface ApiResponse<T> { status: number; body: T }

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** A small JSON-over-HTTP client for the API. One request at a time per call; no retries (callers decide). */
export class ApiClient {
  readonly base: URL;
  readonly where: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(o: ClientOptions) {
    this.base = o.base;
    this.where = describeBase(o.base);
    this.token = o.token || undefined;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get<T>(path: string): Promise<T> { return this.request<T>('GET', path).then((r) => r.body); }

  /** `path` starts after /v1 (e.g. "/status"). Resolves on 2xx; rejects with ClientError otherwise. */
  request<T>(method: Method, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const url = new URL(this.base.href);
    const [p, q] = path.split('?', 2) as [string, string | undefined];
    url.pathname = basePath(this.base) + API_PREFIX + p;
    if (q !== undefined) url.search = q;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = payload.length; }
    if (this.token) headers['authorization'] = `Bearer ${this.token}`;
    const lib = url.protocol === 'https:' ? https : http;
    const what = `${method} ${API_PREFIX}${path}`;

    return new Promise<ApiResponse<T>>((resolve, reject) => {
      let settled = false;
      const fail = (e: ClientError) => { if (!settled) { settled = true; reject(e); } };
      // agent: false -- a fresh connection per request, so nothing lingers to hold the process open.
      const req = lib.request(url, { method, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => fail(this.transportError(e, what)));
        res.on('end', () => {
          clearTimeout(timer);
          if (settled) return;
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try { json = text === '' ? undefined : JSON.parse(text); } catch { json = undefined; }
          if (status >= 200 && status < 300) {
            if (json === undefined) return fail(new ClientError([`vipgate: the API at ${this.where} answered ${what} with something that is not JSON (is that address really vipgate's API?)`], 1, 'ECLIENT_BAD_RESPONSE', status));
            settled = true;
            resolve({ status, body: json as T });
            return;
          }
          fail(this.httpError(status, json, text, what));
        });
      });
      const timer = setTimeout(() => {
        fail(new ClientError([`vipgate: the API at ${this.where} did not answer ${what} within ${this.timeoutMs / 1000}s (is vipgate overloaded or stopped? --timeout sets the limit)`], 1, 'ETIMEDOUT'));
        req.destroy();
      }, this.timeoutMs);
      req.on('error', (e) => { clearTimeout(timer); fail(this.transportError(e, what)); });
      req.end(payload);
    });
  }

  private transportError(e: Error, what: string): ClientError {
    const code = (e as NodeJS.ErrnoException).code ?? 'ECONNECT';
    const base = `cannot reach the vipgate API at ${this.where}`;
    const line = code === 'ECONNREFUSED'
      ? `${base}: is \`vipgate run\` running, with api.listen set to it? (connection refused)`
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? `${base}: no such host (${code})`
        : `${base} (${what}): ${e.message}`;
    return new ClientError([`vipgate: ${line}`], 1, code);
  }

  private httpError(status: number, json: unknown, text: string, what: string): ClientError {
    const body = isErrorBody(json) ? json.error : null;
    const exit = status >= 400 && status < 500 ? 2 : 1;
    if (!body) {
      const snippet = text.trim().slice(0, 200);
      return new ClientError([`vipgate: the API at ${this.where} answered ${what} with HTTP ${status}${snippet ? `: ${snippet}` : ''}`], exit, `HTTP_${status}`, status);
    }
    const lines = [`vipgate: ${body.message}`];
    for (const i of body.issues ?? []) lines.push(`  ${i}`);
    if (body.code === 'EAPI_UNAUTHORIZED' && !body.message.includes(TOKEN_ENV)) lines.push(`(give the API's token with --token or ${TOKEN_ENV})`);
    return new ClientError(lines, exit, body.code, status, body);
  }
}

function isErrorBody(j: unknown): j is { error: ApiErrorBody } {
  if (typeof j !== 'object' || j === null) return false;
  const e = (j as { error?: unknown }).error;
  return typeof e === 'object' && e !== null && typeof (e as ApiErrorBody).message === 'string' && typeof (e as ApiErrorBody).code === 'string';
}

// ---------------------------------------------------------------------------------------------
// Argument checks shared with `vipgate agent`

export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkName(v: string, flag: string): string {
  if (!NAME_RE.test(v)) throw new UsageError(`${flag}: "${v}" is not a backend name (1 to 64 of A-Z a-z 0-9 _ . -)`);
  return v;
}

export function checkIp(v: string, flag: string): string {
  if (parseIpv4(v) === null) throw new UsageError(`${flag}: "${v}" is not an IPv4 address (expected dotted quad like 10.0.0.100)`);
  return v;
}

export function checkMac(v: string, flag: string): string {
  if (parseMac(v) === null) throw new UsageError(`${flag}: "${v}" is not a MAC address (expected six hex bytes like 02:00:5e:00:00:01)`);
  return v;
}

export function checkInt(v: string, flag: string, min: number, max: number, what = 'an integer'): number {
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: must be ${what} ${min}..${max}, got "${v}"`);
  return n;
}

export function checkPort(v: string, flag: string): number {
  return checkInt(v, flag, 1, 65535, 'a port');
}

/** "VIP" (IP mode) or "VIP:PORT" (port mode), as the API names a service. */
export function checkService(v: string, flag: string): string {
  const m = /^([^:]+)(?::(.*))?$/.exec(v);
  if (!m || parseIpv4(m[1]!) === null || (m[2] !== undefined && !/^\d+$/.test(m[2]))) {
    throw new UsageError(`${flag}: "${v}" is not a service; give VIP:PORT (e.g. 10.0.0.100:80) or VIP for every port`);
  }
  if (m[2] !== undefined) checkInt(m[2], `${flag} ${v}`, 1, 65535, 'a port');
  return v;
}

/** --serves can be repeated and each can be a comma list. */
export function checkServes(list: readonly string[] | undefined, flag: string): string[] {
  const all = (list ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (all.length === 0) throw new UsageError(`missing ${flag} VIP[:PORT] (what this backend serves; repeat it or give a comma list)`);
  return all.map((s) => checkService(s, flag));
}

/** Whole seconds, as "30" or a duration like "30s" / "2m". */
export function checkSeconds(v: string, flag: string, min: number, max: number): number {
  let n: number;
  if (/^\d+$/.test(v)) n = Number(v);
  else {
    const ms = parseDuration(v);
    n = ms !== null && ms % 1000 === 0 ? ms / 1000 : NaN;
  }
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${flag}: must be whole seconds ${min}..${max} (e.g. 30 or 30s), got "${v}"`);
  return n;
}

/** A duration like 500ms, 1s, 2m, at least `minMs`. */
export function checkDuration(v: string, flag: string, minMs: number): number {
  const ms = parseDuration(v);
  if (ms === null || ms < minMs) throw new UsageError(`${flag}: takes a duration like 1s or 500ms (at least ${minMs}ms), got "${v}"`);
  return ms;
}

/**
 * The registration body from command-line flags (`vipgate register` and `vipgate agent` take the
 * same ones): required flags present, each value checked; `lease` comes checked by the caller
 * (the two commands allow different ranges).
 */
export function registerBody(cmd: string, usage: string, v: { name?: string | undefined; ip?: string | undefined; mac?: string | undefined; serves?: string[] | undefined; priority?: string | undefined; weight?: string | undefined }, lease: number | undefined): RegisterRequest {
  const missing = [v.name === undefined && '--name N', v.ip === undefined && '--ip IP', v.serves === undefined && '--serves VIP[:PORT]'].filter(Boolean);
  if (missing.length) throw new UsageError(`vipgate ${cmd}: missing ${missing.join(', ')}\nusage: ${usage}`);
  const body: RegisterRequest = { name: checkName(v.name!, '--name'), ip: checkIp(v.ip!, '--ip'), serves: checkServes(v.serves, '--serves') };
  if (v.mac !== undefined) body.mac = checkMac(v.mac, '--mac');
  if (v.priority !== undefined) body.priority = checkInt(v.priority, '--priority', PRIORITY.min, PRIORITY.max);
  if (v.weight !== undefined) body.weight = checkInt(v.weight, '--weight', WEIGHT.min, WEIGHT.max);
  if (lease !== undefined) body.lease = lease;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Output

/** Where a command writes. The real one is the process; tests capture it. */
export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** stdout is a terminal (top redraws in place only then). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** Monotonic milliseconds (top's rates); tests give a fake clock. */
  now(): number;
}

export function processIo(): CliIo {
  return {
    out: (s) => { process.stdout.write(s + '\n'); },
    err: (s) => { process.stderr.write(s + '\n'); },
    isTTY: process.stdout.isTTY === true,
    env: process.env,
    now: () => performance.now(),
  };
}

const R = 'right' as const;
const L = 'left' as const;

/** SERVICE=ROLE per service, with any pin: "(pinned)" when this backend is the pinned one,
 *  "(pinned NAME)" when another member is (a standby can only be waiting behind a pin). */
export function servesText(b: BackendView): string {
  const pin = (p: string | null | undefined) => (p ? (p === b.name ? '(pinned)' : `(pinned ${p})`) : '');
  return b.serves.length ? b.serves.map((s) => `${s.service}=${s.role}${pin(s.pinned)}`).join(',') : '-';
}

export function stateText(b: BackendView): string {
  return b.leaving ? `${b.state},leaving` : b.state;
}

export function leaseText(b: BackendView): string {
  return b.lease ? `${humanSeconds(b.lease.expiresIn)}/${humanSeconds(b.lease.seconds)}` : '-';
}

/** Health beside the admin state: "up 0.4ms", "down: connection refused", "unknown", or "-" (not checked). */
export function healthText(b: BackendView): string {
  const h = b.health;
  if (!h || h.state === 'unchecked') return '-';
  if (h.state === 'down') return `down: ${h.lastFailure ?? 'failed'}`;
  if (h.state === 'up') return h.lastLatencyMs === null ? 'up' : `up ${h.lastLatencyMs < 10 ? h.lastLatencyMs.toFixed(1) : Math.round(h.lastLatencyMs)}ms`;
  return 'unknown';
}

export function backendsTable(list: readonly BackendView[]): string {
  return formatTable(
    ['NAME', 'IP', 'MAC', 'STATE', 'HEALTH', 'WEIGHT', 'SERVES', 'FLOWS', 'CONNS', 'SOURCE', 'LEASE'],
    list.map((b) => [b.name, b.ip, b.mac, stateText(b), healthText(b), b.weight, servesText(b), b.flows, b.connections, b.source, leaseText(b)]),
    { align: [L, L, L, L, L, R, L, R, R, L, L] },
  );
}

export function eventLine(e: VgEvent): string {
  return `${e.time}  #${e.seq}  ${e.type.padEnd(18)} ${e.message}`;
}

export function servicesTable(list: readonly ServiceView[]): string {
  return formatTable(
    ['SERVICE', 'MODE', 'ACTIVE', 'STANDBY', 'PINNED'],
    list.map((s) => [
      s.service, s.mode, s.serving.join(','),
      s.members.filter((m) => m.role === 'standby').map((m) => m.backend).join(','), s.pinned,
    ]),
  );
}

export function vipsTable(list: readonly VipView[]): string {
  return formatTable(['VIP', 'SOURCE', 'SERVICES'], list.map((v) => [v.vip, v.source, v.services.join(',')]));
}

/** `vipgate cluster`: the nodes (priority order), who owns each VIP, and what was refused. */
export function clusterText(c: ClusterView): string {
  if (!c.enabled) return 'no cluster: this vipgate has no cluster: section in its config (it answers ARP for every VIP itself)';
  const ms = (v: number | null) => (v === null ? '-' : v < 10_000 ? `${Math.round(v)}ms` : humanSeconds(v / 1000));
  const nodes = formatTable(
    ['NODE', 'ADDRESS', 'STATE', 'HEARD', 'DEAD AFTER', 'FLOWS', 'PPS', 'CPU', 'OWNS', 'SYNCED', 'REPL SENT', 'REPL RECV', 'LAG'],
    (c.nodes ?? []).map((n) => [
      `${n.priority}. ${n.name}${n.self ? ' *' : ''}`, n.address, n.state, n.self ? '-' : ms(n.lastHeardMs), ms(n.effectiveDeadAfterMs),
      n.load ? `${humanCount(n.load.flows)}/${humanCount(n.load.capacity)}` : '-', n.load ? humanCount(n.load.pps) : '-',
      n.load ? `${Math.round(n.load.cpu * 100)}%` : '-', n.owns.length ? n.owns.join(',') : '-', n.synced === null ? '-' : n.synced ? 'yes' : 'no',
      n.self ? '-' : humanCount(n.replication.sent), n.self ? '-' : humanCount(n.replication.received),
      n.self || n.replication.lagRecords === null ? '-' : humanCount(n.replication.lagRecords),
    ]),
  );
  const vips = formatTable(['VIP', 'OWNER', 'HERE', 'RULE'], (c.vips ?? []).map((v) => [v.vip, v.owner ?? '(none)', v.here ? 'yes' : 'no', v.rule]));
  const rej = Object.entries(c.rejected ?? {}).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(', ') || 'none';
  const k = c.counters!;
  return [
    `node ${c.node} (* below), ${c.synced ? 'synced' : 'catching up with its peers\' flows (owns nothing until synced)'}; heartbeat ${c.heartbeatMs}ms, dead after ${c.deadAfterMs}ms, preempt ${c.preempt ? 'on' : 'off'}, UDP port ${c.port}`,
    '', nodes, '', vips, '',
    `takeovers ${k.takeovers}, releases ${k.releases}, split brains resolved ${k.splitBrains}, gratuitous ARP sent ${k.garpSent}`,
    `replication: ${humanCount(k.recordsSent)} records sent, ${humanCount(k.recordsReceived)} received, ${k.journalPending} waiting; snapshots ${k.snapshotsSent} sent, ${k.snapshotsReceived} received; import ring full ${k.importRingFull}`,
    `rejected messages: ${rej}`,
  ].join('\n');
}

async function cmdCluster(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('cluster', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' } }, CLIENT_USAGE.cluster);
  noPositionals('cluster', positionals);
  const c = await clientFrom(values, io.env).get<ClusterView>('/cluster');
  if (values.json) json(io, c);
  else io.out(clusterText(c));
  return 0;
}

export function neighboursTable(list: readonly NeighbourView[]): string {
  return formatTable(['IP', 'MAC', 'AGE'], list.map((n) => [n.ip, n.mac, humanSeconds(n.ageSeconds)]), { align: [L, L, R] });
}

export function flowsTable(list: readonly FlowView[]): string {
  return formatTable(
    ['CLIENT', 'VIP', 'BACKEND', 'STATE', 'AGE', 'IDLE', 'IN', 'OUT'],
    list.map((f) => [f.client, f.vip, f.backend, f.state, humanSeconds(f.ageSeconds), humanSeconds(f.idleSeconds), humanCount(f.packetsIn), humanCount(f.packetsOut)]),
    { align: [L, L, L, L, R, R, R, R] },
  );
}

/** The non-zero drop counters, largest first, as "reason n, reason n". */
export function dropsText(drops: Record<string, number>): string {
  const nz = Object.entries(drops).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return nz.length ? nz.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

export function statusText(s: StatusView): string {
  const b = s.backends;
  const c = s.counters;
  return formatPairs([
    ['version', `${s.version} (pid ${s.pid})`],
    ['mode', s.mode],
    ['interface', s.interface],
    ['mac', s.mac],
    ['uptime', humanSeconds(s.uptimeSeconds)],
    ['generation', s.generation],
    ['config', s.configFile],
    ['state file', s.stateFile],
    ['vips', s.vips],
    ['services', s.services],
    ['backends', `${b.total} (${b.up} up, ${b.drain} drain, ${b.down} down)`],
    ['flows', `${s.flows.active} active of ${s.flows.capacity}`],
    ['frames', `in ${c.frames_in}, out ${c.frames_out}, forwarded ${c.forwarded}`],
    ['drops', dropsText(s.drops)],
    ...(s.worker ? [['worker', workerText(s.worker)] as [string, string]] : []),
    ...(s.worker?.lastExit ? [['last exit', `${s.worker.lastExit.reason} at ${s.worker.lastExit.at}`] as [string, string]] : []),
    ...(s.sharedState ? [['shared state', `${s.sharedState.file} (${s.sharedState.bytes} bytes on ${s.sharedState.pages}, layout ${s.sharedState.layoutVersion}, created ${s.sharedState.createdAt} by ${s.sharedState.createdBy})`] as [string, string]] : []),
  ]);
}

function workerText(w: WorkerView): string {
  const pid = w.pid === null ? 'none' : `pid ${w.pid}`;
  const next = w.state === 'backoff' && w.nextStartAt ? `, next start ${w.nextStartAt}` : '';
  return `${w.state} (${pid}${w.startedAt ? `, started ${w.startedAt}` : ''}${w.scheduling ? `, ${w.scheduling}` : ''}${next}), ${w.restarts} restart${w.restarts === 1 ? '' : 's'}`;
}

// ---------------------------------------------------------------------------------------------
// Commands

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every API command takes. */
export const CONNECT_OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
} as const satisfies Options;

export function parseCommand<O extends Options>(cmd: string, args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`vipgate ${cmd}: ${(e as Error).message.replace(/\. To specify.*$/s, '')}\nusage: ${usage}`);
  }
}

export function clientFrom(values: { api?: string | undefined; token?: string | undefined; timeout?: string | undefined }, env: NodeJS.ProcessEnv): ApiClient {
  const base = apiBase(values.api, env);
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : checkDuration(values.timeout, '--timeout', 100);
  return new ApiClient({ base, token: values.token ?? (env[TOKEN_ENV] || undefined), timeoutMs });
}

export const CLIENT_USAGE = {
  status: 'vipgate status [--json]',
  backends: 'vipgate backends [--json]',
  services: 'vipgate services [--json]',
  vips: 'vipgate vips [--json]',
  neighbours: 'vipgate neighbours [--json]',
  flows: 'vipgate flows [--vip IP] [--port N] [--backend NAME] [--client IP[:PORT]] [--state syn|established|closing]\n' +
    '      [--limit N] [--cursor C | --all] [--json]',
  register: 'vipgate register --name N --ip IP [--mac MAC] --serves VIP[:PORT]... [--priority P] [--weight W]\n' +
    '      [--lease SECONDS] [--json]',
  unregister: 'vipgate unregister NAME [--force] [--json]',
  switch: 'vipgate switch SERVICE BACKEND | SERVICE --auto [--json]',
  set: 'vipgate set NAME [--state up|drain|down|active|standby] [--weight W] [--json]',
  reload: 'vipgate reload [--json]',
  events: 'vipgate events [--since SEQ] [--follow] [--json]',
  upgrade: 'vipgate upgrade [--to PATH] [--json]',
  cluster: 'vipgate cluster [--json]',
} as const;

export type ClientCommand = keyof typeof CLIENT_USAGE;
export const CLIENT_COMMANDS = Object.keys(CLIENT_USAGE) as ClientCommand[];

export function isClientCommand(c: string | undefined): c is ClientCommand {
  return c !== undefined && Object.prototype.hasOwnProperty.call(CLIENT_USAGE, c);
}

function noPositionals(cmd: string, p: string[]): void {
  if (p.length) throw new UsageError(`vipgate ${cmd}: unexpected argument "${p[0]}"\nusage: ${CLIENT_USAGE[cmd as ClientCommand]}`);
}

function json(io: CliIo, v: unknown): void { io.out(JSON.stringify(v, null, 2)); }

/** A listing: GET `path`, print `key`'s array as a table (or the body as JSON). */
async function listing<K extends string, V>(cmd: ClientCommand, args: string[], io: CliIo, path: string, key: K, table: (v: V[]) => string): Promise<number> {
  const { values, positionals } = parseCommand(cmd, args, { ...CONNECT_OPTIONS, json: { type: 'boolean' } }, CLIENT_USAGE[cmd]);
  noPositionals(cmd, positionals);
  const c = clientFrom(values, io.env);
  const body = await c.get<Record<K, V[]>>(path);
  if (values.json) json(io, body);
  else io.out(table(body[key] ?? []));
  return 0;
}

async function cmdStatus(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('status', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' } }, CLIENT_USAGE.status);
  noPositionals('status', positionals);
  const s = await clientFrom(values, io.env).get<StatusView>('/status');
  if (values.json) json(io, s);
  else io.out(statusText(s));
  return 0;
}

const FLOW_STATES: ReadonlyArray<FlowView['state']> = ['syn', 'established', 'closing'];

export function flowQueryString(q: FlowQuery): string {
  const p = new URLSearchParams();
  for (const k of ['vip', 'port', 'backend', 'client', 'state', 'limit', 'cursor'] as const) {
    const v = q[k];
    if (v !== undefined) p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function cmdFlows(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('flows', args, {
    ...CONNECT_OPTIONS, json: { type: 'boolean' }, vip: { type: 'string' }, port: { type: 'string' },
    backend: { type: 'string' }, client: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' },
    cursor: { type: 'string' }, all: { type: 'boolean' },
  }, CLIENT_USAGE.flows);
  noPositionals('flows', positionals);
  const q: FlowQuery = {};
  if (values.vip !== undefined) q.vip = checkIp(values.vip, '--vip');
  if (values.port !== undefined) q.port = checkPort(values.port, '--port');
  if (values.backend !== undefined) q.backend = checkName(values.backend, '--backend');
  if (values.client !== undefined) {
    const [ip, port, extra] = values.client.split(':');
    checkIp(ip!, '--client');
    if (port !== undefined) checkPort(port, '--client port');
    if (extra !== undefined) throw new UsageError(`--client: "${values.client}" is not IP or IP:PORT`);
    q.client = values.client;
  }
  if (values.state !== undefined) {
    if (!(FLOW_STATES as readonly string[]).includes(values.state)) throw new UsageError(`--state: must be one of ${FLOW_STATES.join(', ')}, got "${values.state}"`);
    q.state = values.state as FlowView['state'];
  }
  if (values.limit !== undefined) q.limit = checkInt(values.limit, '--limit', 1, 1000);
  if (values.cursor !== undefined) {
    if (values.all) throw new UsageError('vipgate flows: --all starts at the beginning and follows every page; give --cursor or --all, not both');
    q.cursor = values.cursor;
  }
  const c = clientFrom(values, io.env);
  if (!values.all) {
    const page = await c.get<FlowPage>('/flows' + flowQueryString(q));
    if (values.json) { json(io, page); return 0; }
    io.out(flowsTable(page.flows));
    if (page.next !== null && page.next !== undefined) io.out(`more: --cursor ${page.next}`);
    return 0;
  }
  // --all: follow the cursors. Pages are as large as the server allows unless --limit says otherwise.
  if (q.limit === undefined) q.limit = 1000;
  const flows: FlowView[] = [];
  const seen = new Set<string>();
  for (;;) {
    const page = await c.get<FlowPage>('/flows' + flowQueryString(q));
    flows.push(...page.flows);
    if (page.next === null || page.next === undefined) break;
    if (seen.has(page.next)) throw new ClientError([`vipgate: the API returned cursor ${page.next} twice; stopping after ${flows.length} flows`], 1, 'ECLIENT_CURSOR_LOOP');
    seen.add(page.next);
    q.cursor = page.next;
  }
  if (values.json) json(io, { flows, next: null } satisfies FlowPage);
  else io.out(flowsTable(flows));
  return 0;
}

async function cmdRegister(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('register', args, {
    ...CONNECT_OPTIONS, json: { type: 'boolean' }, name: { type: 'string' }, ip: { type: 'string' }, mac: { type: 'string' },
    serves: { type: 'string', multiple: true }, priority: { type: 'string' }, weight: { type: 'string' }, lease: { type: 'string' },
  }, CLIENT_USAGE.register);
  noPositionals('register', positionals);
  const body = registerBody('register', CLIENT_USAGE.register, values,
    values.lease === undefined ? undefined : checkSeconds(values.lease, '--lease', LEASE.min, LEASE.max));
  const r = await clientFrom(values, io.env).request<{ backend: BackendView; created: boolean }>('POST', '/backends', body);
  if (values.json) { json(io, r.body); return 0; }
  io.out(`registered ${r.body.backend.name} (${r.body.created ? 'created' : 'renewed'})`);
  io.out(backendsTable([r.body.backend]));
  return 0;
}

async function cmdUnregister(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('unregister', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' }, force: { type: 'boolean' } }, CLIENT_USAGE.unregister);
  if (positionals.length !== 1) throw new UsageError(`vipgate unregister: give one backend NAME\nusage: ${CLIENT_USAGE.unregister}`);
  const name = checkName(positionals[0]!, 'NAME');
  const force = values.force === true;
  const r = await clientFrom(values, io.env).request<{ backend: BackendView }>('DELETE', `/backends/${encodeURIComponent(name)}${force ? '?force=true' : ''}`);
  if (values.json) { json(io, r.body); return 0; }
  const b = r.body.backend;
  if (force || b.flows === 0) io.out(`${b.name} removed`);
  else io.out(`${b.name} is draining: ${b.flows} flow${b.flows === 1 ? '' : 's'} left; it is removed when they end`);
  return 0;
}

async function cmdSwitch(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('switch', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' }, auto: { type: 'boolean' } }, CLIENT_USAGE.switch);
  if (positionals.length !== (values.auto ? 1 : 2)) throw new UsageError(`vipgate switch: give SERVICE and BACKEND (or SERVICE --auto)\nusage: ${CLIENT_USAGE.switch}`);
  const service = checkService(positionals[0]!, 'SERVICE');
  // --auto: no pinned member any more; the highest priority is active again.
  const backend = values.auto ? null : checkName(positionals[1]!, 'BACKEND');
  const r = await clientFrom(values, io.env).request<{ service: ServiceView }>('POST', `/services/${service}/switch`, { backend });
  if (values.json) { json(io, r.body); return 0; }
  io.out(servicesTable([r.body.service]));
  io.out(backend === null
    ? `${service}: no pin; priority order decides the active members again`
    : `pinned ${service} to ${backend} until the next switch, kept across restarts; undo: vipgate switch ${service} --auto`);
  return 0;
}

async function cmdSet(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('set', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' }, state: { type: 'string' }, weight: { type: 'string' } }, CLIENT_USAGE.set);
  if (positionals.length !== 1) throw new UsageError(`vipgate set: give one backend NAME\nusage: ${CLIENT_USAGE.set}`);
  const name = checkName(positionals[0]!, 'NAME');
  const body: SetBackendRequest = {};
  if (values.state !== undefined) {
    if (!(SET_STATES as readonly string[]).includes(values.state)) throw new UsageError(`--state: must be one of ${SET_STATES.join(', ')}, got "${values.state}"`);
    body.state = values.state as AdminState | RoleState;
  }
  if (values.weight !== undefined) body.weight = checkInt(values.weight, '--weight', WEIGHT.min, WEIGHT.max);
  if (body.state === undefined && body.weight === undefined) throw new UsageError(`vipgate set: nothing to change; give --state and/or --weight\nusage: ${CLIENT_USAGE.set}`);
  const r = await clientFrom(values, io.env).request<{ backend: BackendView }>('PATCH', `/backends/${encodeURIComponent(name)}`, body);
  if (values.json) { json(io, r.body); return 0; }
  io.out(backendsTable([r.body.backend]));
  // active and standby work by pinning services (as a switch does): say so, and how to undo it,
  // since a pin outlives this command, the backend's state and restarts.
  if (body.state === 'active' || body.state === 'standby') {
    for (const sv of r.body.backend.serves) {
      if (sv.pinned === null || (body.state === 'active') !== (sv.pinned === name)) continue;
      io.out(`pinned ${sv.service} to ${sv.pinned}${sv.pinned === name ? '' : ` (in place of ${name})`}, kept across restarts; ` +
        `undo: vipgate switch ${sv.service} --auto`);
    }
  }
  return 0;
}

async function cmdReload(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('reload', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' } }, CLIENT_USAGE.reload);
  noPositionals('reload', positionals);
  const r = await clientFrom(values, io.env).request<ReloadResult>('POST', '/reload');
  if (values.json) { json(io, r.body); return 0; }
  if (r.body.changes.length === 0) { io.out(`no changes (generation ${r.body.generation})`); return 0; }
  io.out(`reloaded: generation ${r.body.generation}, ${r.body.changes.length} change${r.body.changes.length === 1 ? '' : 's'}:`);
  for (const ch of r.body.changes) io.out(`  ${ch}`);
  return 0;
}

/** Recent events; --follow keeps waiting for new ones (long polls of 25 s) until interrupted. */
async function cmdEvents(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('events', args, {
    ...CONNECT_OPTIONS, json: { type: 'boolean' }, follow: { type: 'boolean' }, since: { type: 'string' },
  }, CLIENT_USAGE.events);
  noPositionals('events', positionals);
  let since = values.since === undefined ? 0 : checkInt(values.since, '--since', 0, Number.MAX_SAFE_INTEGER);
  const base = clientFrom(values, io.env);
  // A long poll waits 25 s on the server: the client waits longer than that.
  const c = values.follow ? clientFrom({ ...values, timeout: values.timeout ?? '35s' }, io.env) : base;
  const print = (p: EventPage) => {
    if (p.missed && !values.json) io.out(`(${p.missed} earlier event${p.missed === 1 ? ' is' : 's are'} no longer in vipgate's recent list)`);
    for (const e of p.events) io.out(values.json ? JSON.stringify(e) : eventLine(e));
    since = Math.max(since, p.next);
  };
  const first = await c.get<EventPage>(`/events?since=${since}&limit=1000`);
  if (values.json && !values.follow) { json(io, first); return 0; }
  print(first);
  while (values.follow) print(await c.get<EventPage>(`/events?since=${since}&limit=1000&wait=25`));
  return 0;
}

/**
 * Ask the running vipgate to hand over to another build, then wait until the new one answers the
 * API with its own PID and its worker forwards. Default --to: the build running this command.
 */
async function cmdUpgrade(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommand('upgrade', args, { ...CONNECT_OPTIONS, json: { type: 'boolean' }, to: { type: 'string' } }, CLIENT_USAGE.upgrade);
  noPositionals('upgrade', positionals);
  const to = path.resolve(values.to ?? process.argv[1] ?? '');
  // The new build is started and checked before the API answers: allow it time.
  const c = clientFrom({ ...values, timeout: values.timeout ?? '60s' }, io.env);
  const r = await c.request<{ from: { version: string; pid: number }; to: { version: string; pid: number } }>('POST', '/upgrade', { to });
  const { from, to: next } = r.body;
  const until = Date.now() + 60_000;
  let s: StatusView | null = null;
  let letGo = false;
  while (Date.now() < until) {
    await new Promise((res) => setTimeout(res, 200));
    try { s = await c.get<StatusView>('/status'); } catch { letGo = true; continue; } // the API port changes hands
    if (s.pid === next.pid && s.worker?.state === 'running') break;
    if (s.pid !== from.pid) letGo = true;
    // The old one let go of the API and serves it again: the new one failed and it took the interface back.
    if (letGo && s.pid === from.pid) {
      throw new ClientError([`vipgate upgrade: the new vipgate (PID ${next.pid}) did not take over; vipgate ${from.version} (PID ${from.pid}) took the interface back and serves it; its log says why`], 1, 'EUPGRADE_FAILED');
    }
  }
  if (!s || s.pid !== next.pid || s.worker?.state !== 'running') {
    const now = s ? `the API is served by PID ${s.pid} (worker ${s.worker?.state ?? 'none'})` : 'the API does not answer';
    throw new ClientError([`vipgate upgrade: the new vipgate (PID ${next.pid}) did not take over within 60 s; ${now}; see the log`], 1, 'EUPGRADE_TIMEOUT');
  }
  if (values.json) { json(io, { from, to: next, worker: s.worker }); return 0; }
  io.out(`upgraded: vipgate ${from.version} (PID ${from.pid}) -> ${next.version} (PID ${next.pid}), packet worker PID ${s.worker.pid} forwarding`);
  return 0;
}

const COMMANDS: Record<ClientCommand, (args: string[], io: CliIo) => Promise<number>> = {
  cluster: cmdCluster,
  upgrade: cmdUpgrade,
  events: cmdEvents,
  status: cmdStatus,
  backends: (a, io) => listing<'backends', BackendView>('backends', a, io, '/backends', 'backends', backendsTable),
  services: (a, io) => listing<'services', ServiceView>('services', a, io, '/services', 'services', servicesTable),
  vips: (a, io) => listing<'vips', VipView>('vips', a, io, '/vips', 'vips', vipsTable),
  neighbours: (a, io) => listing<'neighbours', NeighbourView>('neighbours', a, io, '/neighbours', 'neighbours', neighboursTable),
  flows: cmdFlows,
  register: cmdRegister,
  unregister: cmdUnregister,
  switch: cmdSwitch,
  set: cmdSet,
  reload: cmdReload,
};

/**
 * Run one API command. Usage and API errors are printed to io.err and become the exit status;
 * anything else rejects (a bug, for the caller's internal-error report).
 */
export async function runClient(cmd: ClientCommand, args: string[], io: CliIo = processIo()): Promise<number> {
  try {
    return await COMMANDS[cmd](args, io);
  } catch (e) {
    return reportClientError(e, io);
  }
}

/** UsageError -> 2, ClientError -> its exit status; anything else is rethrown. */
export function reportClientError(e: unknown, io: CliIo): number {
  if (e instanceof UsageError) { io.err(e.message.startsWith('vipgate') ? e.message : `vipgate: ${e.message}`); return 2; }
  if (e instanceof ClientError) { for (const l of e.lines) io.err(l); return e.exitCode; }
  throw e;
}
