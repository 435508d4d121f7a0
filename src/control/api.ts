// The runtime API's HTTP server: node:http only, the routes and shapes of api-types.ts.
//
// The server is a thin layer: it authenticates, routes, bounds and parses bodies and queries,
// and maps what the controller throws to { error } bodies. It never validates fields itself
// (the ControlApi methods do, and throw ApiError), and a request it rejects never reaches the
// controller. Order of checks, so that the cheapest and least revealing answer comes first:
//   401 token -> 404 path -> 405 method -> 400 query -> 415 content-type -> 413 size -> 400 JSON.
// Nothing a client sends may crash the process: every handler path ends in a JSON answer, and
// a throw that is not an ApiError is logged with its stack and answered 500 without it.

import * as http from 'node:http';
import * as net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { VipgateError } from './errors';
import {
  type ClusterView,
  API_MAX_BODY,
  API_PREFIX,
  ApiError,
  TOKEN_ENV,
  type ApiErrorBody,
  type ApiErrorCode,
  type ControlApi,
  type FlowQuery,
  type EventQuery,
} from './api-types';

import type { LogLevel } from '../obs/log';
export type ApiLog = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface ApiServerOptions {
  /** "HOST:PORT": IPv4, [IPv6] or a name ("localhost"); port 0 = ephemeral. */
  listen: string;
  /** Bearer token; required (non-empty) when HOST is not a loopback address. */
  token: string | null;
  api: ControlApi;
  /** Prometheus text for GET /metrics; without it /metrics is not served. */
  metrics?: () => Promise<string>;
  log?: ApiLog;
  /** POST /v1/upgrade { to }: hand over to another vipgate build (the supervisor); without it the route is not served. */
  upgrade?: (body: unknown) => Promise<unknown>;
  /** GET /v1/cluster: the cluster view (the supervisor; { enabled: false } without a cluster: section). Without it the route is not served. */
  cluster?: () => ClusterView;
}

export interface ApiServer {
  /** "host:port" actually bound ("[::1]:9180" for IPv6). */
  address: string;
  /** Stops listening and closes every connection, idle or not. Idempotent. */
  close(): Promise<void>;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** headersTimeout and requestTimeout: a request must arrive whole within this. */
export const API_REQUEST_TIMEOUT_MS = 10_000;
/** After answering malformed HTTP, the socket is destroyed this long after its half-close. */
const LINGER_MS = 2_000;

// ---------------------------------------------------------------------------------------------
// Listen address

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 (any spelling, IPv4-mapped included) and "localhost". */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const bare = host.replace(/%.*$/, '');   // IPv6 zone id
  if (net.isIPv4(bare)) return loopback.check(bare, 'ipv4');
  if (net.isIPv6(bare)) return loopback.check(bare, 'ipv6');
  return false;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * "HOST:PORT" -> { host, port }. HOST is an IPv4 address, an IPv6 address in brackets, or a
 * host name (localhost); the IPv6 host is returned without brackets. Throws EAPI_LISTEN.
 */
export function parseListen(s: string): { host: string; port: number } {
  const bad = (why: string): never => {
    throw new VipgateError('EAPI_LISTEN', `api listen address ${JSON.stringify(s)} ${why}; write HOST:PORT, e.g. 127.0.0.1:9180 (loopback), [::1]:9180 or 0.0.0.0:9180 (all interfaces: then a token is required)`);
  };
  if (typeof s !== 'string' || s.trim() === '') return bad('is empty');
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) return bad('has no closing "]" after the IPv6 address');
    host = s.slice(1, close);
    if (!net.isIPv6(host)) return bad(`has ${JSON.stringify(host)} in brackets, which is not an IPv6 address`);
    if (s[close + 1] !== ':') return bad('has no ":PORT" after the IPv6 address');
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return bad('has no port');
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) return bad('looks like an IPv6 address without brackets (write [ADDRESS]:PORT)');
    if (host === '') return bad('has no host');
    if (/^[0-9.]+$/.test(host)) {
      if (!net.isIPv4(host)) return bad(`has ${JSON.stringify(host)}, which is not an IPv4 address`);
    } else if (!HOSTNAME.test(host)) {
      return bad(`has ${JSON.stringify(host)}, which is not an address or host name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return bad(`has port ${JSON.stringify(portText)}; the port is an integer 0..65535 (0: any free port)`);
  }
  return { host, port: Number(portText) };
}

function formatAddress(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// Routes

interface Reply {
  status: number;
  /** JSON-encoded unless `text` is set. */
  json?: unknown;
  text?: { body: string; contentType: string };
}

interface Ctx {
  params: string[];
  query: URLSearchParams;
  body: unknown;
}

interface MethodSpec {
  /** Query parameters accepted (anything else is 400). */
  query: readonly string[];
  /** The request body is a JSON object (POST/PATCH), else any body is ignored. */
  body: boolean;
  run(c: Ctx): Promise<Reply>;
}

interface Route {
  /** Path segments; null = a parameter (one non-empty URL-decoded segment). */
  segs: ReadonlyArray<string | null>;
  /** Parameter names, in order, for error messages. */
  names: readonly string[];
  display: string;
  methods: Record<string, MethodSpec>;
}

const FLOW_STATES = ['syn', 'established', 'closing'] as const;
const FLOW_QUERY = ['vip', 'port', 'backend', 'client', 'state', 'limit', 'cursor'] as const;

function route(display: string, methods: Record<string, MethodSpec>): Route {
  const segs: Array<string | null> = [];
  const names: string[] = [];
  for (const s of display.slice(1).split('/')) {
    const m = /^\{(\w+)\}$/.exec(s);
    if (m) { segs.push(null); names.push(m[1]!); } else segs.push(s);
  }
  return { segs, names, display, methods };
}

const ok = (json: unknown, status = 200): Reply => ({ status, json });
const get = (run: MethodSpec['run'], query: readonly string[] = []): MethodSpec => ({ query, body: false, run });

function buildRoutes(api: ControlApi, metrics: (() => Promise<string>) | undefined, upgrade?: (body: unknown) => Promise<unknown>, cluster?: () => ClusterView): Route[] {
  const P = API_PREFIX;
  const routes = [
    route(`${P}/status`, { GET: get(async () => ok(await api.status())) }),
    route(`${P}/vips`, { GET: get(async () => ok({ vips: await api.vips() })) }),
    route(`${P}/services`, { GET: get(async () => ok({ services: await api.services() })) }),
    route(`${P}/services/{service}/switch`, {
      POST: { query: [], body: true, run: async (c) => ok({ service: await api.switchService(c.params[0]!, c.body) }) },
    }),
    route(`${P}/backends`, {
      GET: get(async () => ok({ backends: await api.backends() })),
      POST: {
        query: [], body: true, run: async (c) => {
          const r = await api.register(c.body);
          return ok({ backend: r.backend, created: r.created }, r.created ? 201 : 200);
        },
      },
    }),
    route(`${P}/backends/{name}`, {
      GET: get(async (c) => ok({ backend: await api.backend(c.params[0]!) })),
      PATCH: { query: [], body: true, run: async (c) => ok({ backend: await api.setBackend(c.params[0]!, c.body) }) },
      DELETE: {
        query: ['force'], body: false, run: async (c) => {
          const f = c.query.get('force');
          if (f !== null && f !== 'true' && f !== 'false') {
            throw new ApiError('EAPI_INVALID', `force is ${JSON.stringify(f)}; write force=true (remove now, cutting its flows) or force=false (drain, the default)`, 'force');
          }
          return ok({ backend: await api.unregister(c.params[0]!, f === 'true') }, 202);
        },
      },
    }),
    route(`${P}/flows`, { GET: get(async (c) => ok(await api.flows(flowQuery(c.query))), FLOW_QUERY) }),
    route(`${P}/neighbours`, { GET: get(async () => ok({ neighbours: await api.neighbours() })) }),
    route(`${P}/counters`, { GET: get(async () => ok(await api.counters())) }),
    route(`${P}/events`, { GET: get(async (c) => ok(await api.events(eventQuery(c.query))), ['since', 'limit', 'wait']) }),
    route(`${P}/reload`, {
      POST: {
        query: [], body: false, run: async () => {
          const r = await api.reload();
          return ok({ generation: r.generation, changes: r.changes });
        },
      },
    }),
  ];
  if (upgrade) {
    routes.push(route(`${P}/upgrade`, { POST: { query: [], body: true, run: async (c) => ok(await upgrade(c.body), 202) } }));
  }
  if (cluster) routes.push(route(`${P}/cluster`, { GET: get(async () => ok(cluster())) }));
  if (metrics) {
    routes.push(route('/metrics', {
      GET: get(async () => ({ status: 200, text: { body: await metrics(), contentType: METRICS_CONTENT_TYPE } })),
    }));
  }
  return routes;
}

function eventQuery(q: URLSearchParams): EventQuery {
  const out: EventQuery = {};
  for (const k of ['since', 'limit', 'wait'] as const) {
    const v = q.get(k);
    if (v === null) continue;
    if (!/^\d{1,15}$/.test(v)) throw new ApiError('EAPI_INVALID', `${k} is ${JSON.stringify(v.slice(0, 40))}; write a whole number (since: the last seq seen, wait: seconds to wait for a new event)`, k);
    out[k] = Number(v);
  }
  return out;
}

function flowQuery(q: URLSearchParams): FlowQuery {
  const out: FlowQuery = {};
  for (const k of ['vip', 'backend', 'client', 'cursor'] as const) {
    const v = q.get(k);
    if (v === null) continue;
    if (v === '') throw new ApiError('EAPI_INVALID', `${k} is empty; leave the parameter out to not filter by it`, k);
    out[k] = v;
  }
  const port = q.get('port');
  if (port !== null) {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
      throw new ApiError('EAPI_INVALID', `port is ${JSON.stringify(port)}; it must be an integer 0..65535`, 'port');
    }
    out.port = Number(port);
  }
  const limit = q.get('limit');
  if (limit !== null) {
    if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > 1000) {
      throw new ApiError('EAPI_INVALID', `limit is ${JSON.stringify(limit)}; it must be an integer 1..1000 (default 100)`, 'limit');
    }
    out.limit = Number(limit);
  }
  const state = q.get('state');
  if (state !== null) {
    if (!(FLOW_STATES as readonly string[]).includes(state)) {
      throw new ApiError('EAPI_INVALID', `state is ${JSON.stringify(state)}; it must be one of ${FLOW_STATES.join(', ')}`, 'state');
    }
    out.state = state as FlowQuery['state'];
  }
  return out;
}

/** Unknown or repeated query parameters. */
function checkQueryNames(q: URLSearchParams, allowed: readonly string[]): void {
  const seen = new Set<string>();
  const unknown: string[] = [];
  for (const k of q.keys()) {
    if (!allowed.includes(k)) {
      if (!unknown.includes(k)) unknown.push(k);
    } else if (seen.has(k)) {
      throw new ApiError('EAPI_INVALID', `query parameter ${k} is given more than once; give it once`, k);
    } else seen.add(k);
  }
  if (unknown.length) {
    const names = unknown.slice(0, 5).map((k) => JSON.stringify(clip(k, 40))).join(', ') + (unknown.length > 5 ? ', ...' : '');
    const accepted = allowed.length ? `this request accepts ${allowed.join(', ')}` : 'this request takes no query parameters';
    throw new ApiError('EAPI_INVALID', `unknown query parameter${unknown.length > 1 ? 's' : ''} ${names}; ${accepted}`, clip(unknown[0]!, 40));
  }
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}

// ---------------------------------------------------------------------------------------------
// Bodies

type BodyResult = { ok: true; data: Buffer } | { ok: false; reason: 'too_large' | 'aborted' };

/** Reads at most `limit` bytes. Past it, stops collecting (the rest is discarded by the caller). */
function readBody(req: http.IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: BodyResult) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish({ ok: false, reason: 'too_large' });
      else chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, data: Buffer.concat(chunks, size) });
    req.on('data', onData);
    req.on('end', onEnd);
    // Without an 'error' listener an aborted request would throw; with one we just stop.
    req.on('error', () => finish({ ok: false, reason: 'aborted' }));
    req.on('aborted', () => finish({ ok: false, reason: 'aborted' }));
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Body bytes -> a JSON object, or ApiError EAPI_BAD_JSON saying where the text goes wrong. */
export function parseJsonObject(data: Buffer): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    throw new ApiError('EAPI_BAD_JSON', 'the request body is not valid UTF-8; send a JSON object');
  }
  if (text.trim() === '') throw new ApiError('EAPI_BAD_JSON', 'the request body is empty; send a JSON object');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const where = jsonSyntaxError(text);
    const detail = where
      ? `${where.what} at position ${where.pos} (line ${where.line}, column ${where.column})`
      : (e as Error).message;
    throw new ApiError('EAPI_BAD_JSON', `the request body is not valid JSON: ${detail}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    const kind = v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
    throw new ApiError('EAPI_BAD_JSON', `the request body is ${kind}; send a JSON object ({ ... })`);
  }
  return v as Record<string, unknown>;
}

/**
 * Where `s` stops being JSON (RFC 8259), or null if it is JSON. V8's JSON.parse message gives a
 * position for some errors only ("Unexpected token 'a', "abc" is not valid JSON" has none), so
 * the position comes from this scanner. Iterative: nesting depth is bounded by the body size only.
 */
export function jsonSyntaxError(s: string): { pos: number; line: number; column: number; what: string } | null {
  const n = s.length;
  let i = 0;
  const stack: number[] = [];   // 0 = in an array, 1 = in an object
  const fail = (what: string) => {
    let line = 1;
    let col = 1;
    for (let k = 0; k < i && k < n; k++) {
      if (s.charCodeAt(k) === 0x0a) { line++; col = 1; } else col++;
    }
    const seen = i >= n ? 'the end of the body' : JSON.stringify(s[i]);
    return { pos: i, line, column: col, what: `${what}, found ${seen}` };
  };
  const ws = () => {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++; else break;
    }
  };
  const digits = () => {
    const start = i;
    while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
    return i > start;
  };
  /** At '"': scans the string; returns a failure or null. */
  const str = () => {
    i++;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === 0x22) { i++; return null; }
      if (c < 0x20) return fail('control character in a string (escape it)');
      if (c === 0x5c) {
        i++;
        const e = s[i];
        if (e === 'u') {
          for (let k = 1; k <= 4; k++) {
            if (!/[0-9a-fA-F]/.test(s[i + k] ?? '')) { i += k; return fail('expected 4 hex digits after \\u'); }
          }
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else return fail('bad escape in a string');
      } else i++;
    }
    return fail('unterminated string');
  };
  /** Object key and ':' (at the key's opening quote). */
  const key = () => {
    if (s[i] !== '"') return fail('expected a double-quoted property name');
    const e = str();
    if (e) return e;
    ws();
    if (s[i] !== ':') return fail("expected ':' after the property name");
    i++;
    return null;
  };

  for (;;) {
    // a value is expected
    ws();
    if (i >= n) return fail('expected a value');
    const c = s[i]!;
    let container = false;
    if (c === '{') {
      i++; ws();
      if (s[i] === '}') i++;
      else { stack.push(1); const e = key(); if (e) return e; container = true; }
    } else if (c === '[') {
      i++; ws();
      if (s[i] === ']') i++;
      else { stack.push(0); container = true; }
    } else if (c === '"') {
      const e = str(); if (e) return e;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      if (c === '-') i++;
      if (s[i] === '0') i++;
      else if (!digits()) return fail('expected a digit');
      if (s[i] === '.') { i++; if (!digits()) return fail('expected a digit after the decimal point'); }
      if (s[i] === 'e' || s[i] === 'E') {
        i++;
        if (s[i] === '+' || s[i] === '-') i++;
        if (!digits()) return fail('expected a digit in the exponent');
      }
    } else {
      const lit = ['true', 'false', 'null'].find((w) => w[0] === c);
      if (!lit) return fail('expected a value');
      for (let k = 0; k < lit.length; k++, i++) if (s[i] !== lit[k]) return fail(`expected ${lit}`);
    }
    if (container) continue;
    // after a value: close containers, or a ',' that asks for the next value
    for (;;) {
      ws();
      if (stack.length === 0) return i < n ? fail('unexpected text after the JSON value') : null;
      const inObject = stack[stack.length - 1] === 1;
      if (s[i] === ',') {
        i++;
        if (inObject) { ws(); const e = key(); if (e) return e; }
        break;
      }
      if (s[i] === (inObject ? '}' : ']')) { i++; stack.pop(); continue; }
      return fail(inObject ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
}

/** application/json with any parameters (charset=utf-8, ...). */
function isJsonContentType(ct: string): boolean {
  return ct.split(';')[0]!.trim().toLowerCase() === 'application/json';
}

// ---------------------------------------------------------------------------------------------
// Errors

function errorReply(status: number, body: ApiErrorBody): Reply {
  return { status, json: { error: body } };
}

function apiError(code: ApiErrorCode, message: string, field?: string): Reply {
  const e = new ApiError(code, message, field);
  return errorReply(e.status, e.body());
}

/** What a handler threw -> the answer; `internal` is called for bugs (not an ApiError). */
function thrownReply(e: unknown, internal: (e: unknown) => void): Reply {
  if (e instanceof ApiError && Number.isInteger(e.status) && e.status >= 400 && e.status <= 599) {
    return errorReply(e.status, e.body());
  }
  if (e instanceof VipgateError && e.code.startsWith('ECONFIG_')) {
    // reload: the file is invalid and nothing changed; the message is one problem per line.
    return errorReply(422, { code: e.code as ApiErrorCode, message: e.message, issues: e.message.split('\n') });
  }
  internal(e);
  return errorReply(500, { code: 'EAPI_INTERNAL', message: 'internal error in vipgate (a bug): the request may not have been applied; the log has the details' });
}

// ---------------------------------------------------------------------------------------------
// Server

function send(res: http.ServerResponse, r: Reply, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  let body: string;
  let type: string;
  if (r.text) {
    body = r.text.body;
    type = r.text.contentType;
  } else {
    body = `${JSON.stringify(r.json)}\n`;
    type = 'application/json';
  }
  res.writeHead(r.status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(body);
}

/** The same answer to the whole request, for a bug in the server layer itself. */
function internalFallback(res: http.ServerResponse): void {
  if (!res.headersSent && !res.destroyed) {
    send(res, errorReply(500, { code: 'EAPI_INTERNAL', message: 'internal error in vipgate (a bug); the log has the details' }));
  } else if (!res.writableEnded) {
    res.destroy();
  }
}

/**
 * Where the API listens and whether that is allowed: off loopback a token is required. Throws
 * EAPI_LISTEN or EAPI_NO_TOKEN. `vipgate run` and `vipgate check-config` both ask this (through
 * control/run-config.ts), so check-config refuses what run refuses.
 */
export function checkApiExposure(listen: string, token: string | null): { host: string; port: number; token: string | null } {
  const { host, port } = parseListen(listen);
  const tok = token === null || token === '' ? null : token;
  if (tok === null && !isLoopback(host)) {
    throw new VipgateError('EAPI_NO_TOKEN', `the API would listen on ${listen}, which is not a loopback address, without a token: anyone who can reach it could change the backends. Set api.token in the config or the ${TOKEN_ENV} environment variable (generate one with: openssl rand -hex 24), or listen on 127.0.0.1`);
  }
  return { host, port, token: tok };
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const { host, port, token } = checkApiExposure(o.listen, o.token);
  const log: ApiLog = o.log ?? (() => {});
  const routes = buildRoutes(o.api, o.metrics, o.upgrade, o.cluster);
  const validPaths = routes.map((r) => r.display).join(', ');
  const tokenHash = token === null ? null : sha256(token);

  const authorized = (req: http.IncomingMessage): 'ok' | 'missing' | 'wrong' => {
    if (tokenHash === null) return 'ok';
    const h = req.headers.authorization;
    if (h === undefined) return 'missing';
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
    if (!m) return 'missing';
    // Hashes have equal lengths, so timingSafeEqual does not throw nor leak the token's length.
    return timingSafeEqual(sha256(m[1]!), tokenHash) ? 'ok' : 'wrong';
  };

  const handle = async (req: http.IncomingMessage): Promise<{ reply: Reply; extra?: Record<string, string> }> => {
    const method = req.method ?? 'GET';
    const auth = authorized(req);
    if (auth !== 'ok') {
      return {
        reply: apiError('EAPI_UNAUTHORIZED', auth === 'missing'
          ? 'this API needs a bearer token: send the header "Authorization: Bearer <token>" with the token of api.token or ' + TOKEN_ENV
          : 'the bearer token is wrong; use the token of api.token in the config or ' + TOKEN_ENV),
        extra: { 'www-authenticate': 'Bearer' },
      };
    }

    const { path, search } = splitTarget(req.url ?? '/');
    const notFound = () => apiError('EAPI_NOT_FOUND', `no such path: ${JSON.stringify(clip(path ?? String(req.url), 100))}; the API serves ${validPaths}`);
    if (path === null) return { reply: notFound() };
    let p = path;
    if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
    const segs = p.slice(1).split('/');
    let found: Route | undefined;
    let raw: string[] = [];
    for (const r of routes) {
      if (r.segs.length !== segs.length) continue;
      const params: string[] = [];
      let match = true;
      for (let k = 0; k < segs.length && match; k++) {
        const want = r.segs[k];
        if (want === null) {
          if (segs[k] === '') match = false; else params.push(segs[k]!);
        } else if (want !== segs[k]) match = false;
      }
      if (match) { found = r; raw = params; break; }
    }
    if (!found) return { reply: notFound() };

    const spec = Object.hasOwn(found.methods, method) ? found.methods[method] : undefined;
    if (!spec) {
      const allow = Object.keys(found.methods).join(', ');
      return {
        reply: apiError('EAPI_METHOD_NOT_ALLOWED', `${clip(method, 20)} is not allowed on ${found.display}; use ${allow}`),
        extra: { allow },
      };
    }

    const params: string[] = [];
    for (let k = 0; k < raw.length; k++) {
      try {
        params.push(decodeURIComponent(raw[k]!));
      } catch {
        throw new ApiError('EAPI_INVALID', `the {${found.names[k]}} part of the path is not valid URL encoding`, found.names[k]);
      }
    }
    const query = new URLSearchParams(search);
    checkQueryNames(query, spec.query);

    let body: unknown;
    if (spec.body) {
      const ct = req.headers['content-type'];
      if (ct !== undefined && !isJsonContentType(ct)) {
        return { reply: apiError('EAPI_UNSUPPORTED_MEDIA_TYPE', `content-type ${JSON.stringify(clip(ct, 100))} is not supported; send a JSON object with content-type: application/json`) };
      }
      const tooLarge = () => {
        // Stop collecting; discard what arrives until the answer is out, then Node closes the
        // connection (connection: close): the rest of the body must not be parsed as a request.
        // curl, fetch and node:http clients all read the 413 even while still sending 64 MiB.
        req.resume();
        return {
          reply: apiError('EAPI_BODY_TOO_LARGE', `the request body is larger than ${API_MAX_BODY} bytes; a registration is well under 1 KiB`),
          extra: { connection: 'close' },
        };
      };
      const declared = Number(req.headers['content-length']);
      if (declared > API_MAX_BODY) return tooLarge();
      const r = await readBody(req, API_MAX_BODY);
      if (!r.ok) {
        if (r.reason === 'too_large') return tooLarge();
        return { reply: apiError('EAPI_BAD_JSON', 'the request body ended early (the client went away)') };
      }
      body = parseJsonObject(r.data);
    }
    return { reply: await spec.run({ params, query, body }) };
  };

  const server = http.createServer({
    headersTimeout: API_REQUEST_TIMEOUT_MS,
    requestTimeout: API_REQUEST_TIMEOUT_MS,
    // requestTimeout is enforced on this tick; Node's default (30 s) would triple the bound.
    connectionsCheckingInterval: 1_000,
  }, (req, res) => {
    const t0 = process.hrtime.bigint();
    const method = req.method ?? '?';
    const mutating = method !== 'GET' && method !== 'HEAD';
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      log(mutating ? 'info' : 'debug', 'api request', {
        method: clip(method, 20),
        path: clip((req.url ?? '').split('?')[0]!, 200),
        status: res.statusCode,
        ms: Math.round(ms * 10) / 10,
      });
    });
    res.on('error', () => { /* the client went away; nothing to answer */ });
    const internal = (e: unknown) => {
      log('error', 'api: internal error while handling a request', {
        method: clip(method, 20),
        path: clip((req.url ?? '').split('?')[0]!, 200),
        error: e instanceof Error ? e.stack ?? e.message : String(e),
      });
    };
    handle(req).then(
      (r) => send(res, r.reply, r.extra),
      (e) => send(res, thrownReply(e, internal)),
    ).catch((e) => {
      internal(e);
      internalFallback(res);
    });
  });

  // Malformed HTTP (bad request line, header overflow, timeout): answer JSON like everything
  // else, then close. Node's default would answer text/plain.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    const pending = (socket as unknown as { _httpMessage?: http.ServerResponse })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || (pending && pending.headersSent)) {
      socket.destroy();
      return;
    }
    const [status, reason, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout', `the request did not arrive within ${API_REQUEST_TIMEOUT_MS / 1000} s`]
      : err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large', 'the request headers are too large']
      : err.code === 'HPE_INVALID_METHOD' ? [400, 'Bad Request', 'unknown HTTP method; the API uses GET, POST, PATCH and DELETE']
      : [400, 'Bad Request', 'the request is not valid HTTP/1.1'];
    const body = `${JSON.stringify({ error: { code: 'EAPI_INVALID', message } })}\n`;
    socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    socket.on('error', () => {});
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.close();
      reject(listenError(o.listen, e));
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => log('error', 'api server error', { error: e.stack ?? String(e) }));

  const a = server.address() as net.AddressInfo;
  const address = formatAddress(a.address, a.port);
  log('info', 'api listening', { address, auth: token !== null });

  let closing: Promise<void> | null = null;
  return {
    address,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Request target -> path and query; absolute-form (via a proxy) is accepted; null = not a path. */
function splitTarget(target: string): { path: string | null; search: string } {
  let t = target;
  if (!t.startsWith('/')) {
    if (!/^https?:\/\//i.test(t)) return { path: null, search: '' };
    try {
      const u = new URL(t);
      t = u.pathname + u.search;
    } catch {
      return { path: null, search: '' };
    }
  }
  const q = t.indexOf('?');
  return q < 0 ? { path: t, search: '' } : { path: t.slice(0, q), search: t.slice(q + 1) };
}

function listenError(listen: string, e: NodeJS.ErrnoException): VipgateError {
  const what =
    e.code === 'EADDRINUSE' ? 'the address is in use (another vipgate, or another program on that port); stop it or set api.listen to a free port'
    : e.code === 'EACCES' ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE); set api.listen to a port of 1024 or more'
    : e.code === 'EADDRNOTAVAIL' ? 'that address is not on this host; set api.listen to an address of one of its interfaces, 127.0.0.1 or 0.0.0.0'
    : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN' ? 'the host name does not resolve; set api.listen to an IP address'
    : `${e.message}; check api.listen`;
  return new VipgateError('EAPI_LISTEN', `cannot listen on ${listen} for the API: ${what}`, { cause: e });
}
