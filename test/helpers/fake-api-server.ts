// A stand-in for vipgate's runtime API (control/api-types.ts) for client and agent tests: a
// node:http server on 127.0.0.1 answering canned responses per route and recording every request.
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ApiErrorBody, BackendView, FlowView, NeighbourView, ServiceView, StatusView, VipView } from '../../src/control/api-types';
import { COUNTER_NAMES, DROP_REASONS } from '../../src/dataplane/counters';

export interface Recorded {
  method: string;
  /** Path without the query, e.g. "/v1/backends/web1". */
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown;
  at: number;
}

export interface Reply { status?: number; body?: unknown; /** Wait before answering. */ delayMs?: number }
export type Handler = Reply | ((req: Recorded, n: number) => Reply);

export function apiError(status: number, code: ApiErrorBody['code'], message: string, extra: Partial<ApiErrorBody> = {}): Reply {
  return { status, body: { error: { code, message, ...extra } } };
}

export class FakeApi {
  readonly requests: Recorded[] = [];
  private readonly routes = new Map<string, Handler[]>();
  private readonly hits = new Map<string, number>();
  private waiters: Array<() => void> = [];

  private constructor(private readonly server: http.Server, readonly port: number) {}

  /** Listen on 127.0.0.1 (port 0: any free port). */
  static async start(port = 0): Promise<FakeApi> {
    let api: FakeApi | null = null;
    const server = http.createServer((req, res) => { void api!.handle(req, res); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    api = new FakeApi(server, (server.address() as AddressInfo).port);
    return api;
  }

  get addr(): string { return `127.0.0.1:${this.port}`; }

  /** Answer `method path` with these, in turn; the last one repeats. Replaces earlier ones. */
  on(method: string, path: string, ...handlers: Handler[]): this {
    this.routes.set(`${method} ${path}`, handlers);
    this.hits.set(`${method} ${path}`, 0);
    return this;
  }

  /** Requests so far matching method and path (path exact, or a RegExp). */
  seen(method: string, path?: string | RegExp): Recorded[] {
    return this.requests.filter((r) => r.method === method && (path === undefined || (typeof path === 'string' ? r.path === path : path.test(r.path))));
  }

  /** Resolves with the first request (from index `from`) satisfying `pred`. */
  async waitFor(pred: (r: Recorded) => boolean, timeoutMs = 10_000, from = 0, what = 'a matching request'): Promise<Recorded> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.requests.slice(from).find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake API: timed out after ${timeoutMs}ms waiting for ${what}; saw: ${this.requests.map((r) => `${r.method} ${r.path}`).join(', ') || 'nothing'}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    let body: unknown;
    try { body = text ? JSON.parse(text) : undefined; } catch { body = text; }
    const rec: Recorded = { method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body, at: Date.now() };
    this.requests.push(rec);
    const key = `${rec.method} ${rec.path}`;
    const hs = this.routes.get(key);
    let reply: Reply;
    if (!hs) reply = apiError(404, 'EAPI_NOT_FOUND', `no such path: ${rec.method} ${rec.path}`);
    else {
      const n = this.hits.get(key)!;
      this.hits.set(key, n + 1);
      const h = hs[Math.min(n, hs.length - 1)]!;
      reply = typeof h === 'function' ? h(rec, n) : h;
    }
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    const out = reply.body === undefined ? '' : JSON.stringify(reply.body);
    res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

// ---- fixtures: plausible API bodies ----

// Every counter and drop reason at zero, from the packet path's own lists (new ones included).
const ZERO_COUNTERS = Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0])) as StatusView['counters'];
const ZERO_DROPS = Object.fromEntries(DROP_REASONS.map((n) => [n, 0])) as StatusView['drops'];

export function status(over: { counters?: Partial<StatusView['counters']>; drops?: Partial<StatusView['drops']> } & Partial<Omit<StatusView, 'counters' | 'drops'>> = {}): StatusView {
  const { counters, drops, ...rest } = over;
  return {
    version: '0.1.0', pid: 4242, uptimeSeconds: 273_600 + 312, interface: 'eth1', mode: 'dsr', mac: '02:00:5e:00:00:01',
    configFile: '/etc/vipgate/vipgate.yaml', stateFile: null, generation: 7, vips: 2, services: 3,
    backends: { total: 3, up: 2, drain: 1, down: 0 }, flows: { active: 120, capacity: 65536 },
    counters: { ...ZERO_COUNTERS, frames_in: 1000, frames_out: 990, forwarded: 980, flows_created: 50, ...counters },
    drops: { ...ZERO_DROPS, unknown_flow: 7, no_backend: 3, ...drops },
    worker: null, sharedState: null,
    ...rest,
  };
}

export function backend(over: Partial<BackendView> & { name: string }): BackendView {
  return {
    ip: '10.0.1.11', mac: '02:00:00:00:01:11', macSource: 'given', state: 'up', weight: 100, source: 'config',
    serves: [{ service: '10.0.0.100:80', priority: 100, role: 'active', pinned: null }], flows: 0, connections: 0, lease: null, leaving: false,
    health: { state: 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null },
    ...over,
  };
}

export const BACKENDS: BackendView[] = [
  backend({ name: 'web1', flows: 80, connections: 12345, health: { state: 'up', check: 'tcp :80', since: null, lastCheck: null, lastLatencyMs: 0.42, lastFailure: null, lastFailureAt: null } }),
  backend({ name: 'web9', ip: '10.0.1.19', serves: [], health: { state: 'down', check: 'tcp :80', since: null, lastCheck: null, lastLatencyMs: 100, lastFailure: 'timeout after 100 ms', lastFailureAt: null } }),
  backend({
    name: 'web-two', ip: '10.0.1.12', mac: null, macSource: null, weight: 50, flows: 40, connections: 7,
    serves: [{ service: '10.0.0.100:80', priority: 100, role: 'active', pinned: null }, { service: '10.0.0.101', priority: 50, role: 'standby', pinned: null }],
  }),
  backend({ name: 'db', ip: '10.0.1.13', state: 'drain', source: 'api', serves: [], lease: { seconds: 30, expiresIn: 22 }, leaving: true }),
];

export const SERVICES: ServiceView[] = [
  {
    service: '10.0.0.100:80', vip: '10.0.0.100', port: 80, mode: 'port', source: 'config', pinned: null,
    members: [
      { backend: 'web1', priority: 100, weight: 100, state: 'up', role: 'active' },
      { backend: 'web-two', priority: 100, weight: 50, state: 'up', role: 'active' },
    ],
    serving: ['web1', 'web-two'],
    failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null },
  },
  {
    service: '10.0.0.101', vip: '10.0.0.101', port: 0, mode: 'ip', source: 'api', pinned: 'web-two',
    members: [
      { backend: 'web-two', priority: 50, weight: 50, state: 'up', role: 'active' },
      { backend: 'web1', priority: 10, weight: 100, state: 'up', role: 'standby' },
    ],
    serving: ['web-two'],
    failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null },
  },
];

export const VIPS: VipView[] = [
  { vip: '10.0.0.100', source: 'config', services: ['10.0.0.100:80'], arp: true },
  { vip: '10.0.0.101', source: 'api', services: ['10.0.0.101'], arp: true },
];

export const NEIGHBOURS: NeighbourView[] = [
  { ip: '10.0.1.11', mac: '02:00:00:00:01:11', ageSeconds: 5 },
  { ip: '10.0.0.1', mac: '02:00:00:00:00:01', ageSeconds: 3700 },
];

export function flow(i: number): FlowView {
  return {
    client: `192.0.2.${10 + i}:${40000 + i}`, vip: '10.0.0.100:80', backend: i % 2 ? 'web-two' : 'web1',
    backendIp: i % 2 ? '10.0.1.12' : '10.0.1.11', state: 'established', ageSeconds: 75 + i, idleSeconds: 0.8,
    packetsIn: 15000 + i, packetsOut: 12 + i,
  };
}

/** A TCP port nobody listens on (bound, then released): for "API unreachable" cases. */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
