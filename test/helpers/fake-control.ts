// A ControlApi for the API server's tests: records every call with its arguments and returns
// canned views; any method can be made to throw a given error (ApiError, a config error, a bug).

import { COUNTER_SLOTS, snapshotCounters, type CounterSnapshot } from '../../src/dataplane/counters';
import type {
  BackendView,
  ControlApi,
  FlowPage,
  FlowQuery,
  EventQuery,
  EventPage,
  NeighbourView,
  ReloadResult,
  ServiceView,
  StatusView,
  VipView,
} from '../../src/control/api-types';

export type Method = keyof ControlApi;
export const MUTATIONS: readonly Method[] = ['register', 'setBackend', 'unregister', 'switchService', 'reload'];

export interface Call { method: Method; args: unknown[] }

export const BACKEND: BackendView = {
  name: 'web1',
  ip: '10.0.1.21',
  mac: '02:00:00:00:01:21',
  macSource: 'given',
  state: 'up',
  weight: 100,
  source: 'api',
  serves: [{ service: '10.0.0.100:80', priority: 100, role: 'active', pinned: null }],
  flows: 3,
  connections: 42,
  lease: null,
  leaving: false,
  health: { state: 'up', check: 'tcp :80 every 1000ms (250ms while changing), timeout 100ms, rise 2, fall 3', since: '2026-01-01T00:00:00.000Z', lastCheck: '2026-01-01T00:00:01.000Z', lastLatencyMs: 0.4, lastFailure: null, lastFailureAt: null },
};

export const SERVICE: ServiceView = {
  service: '10.0.0.100:80',
  vip: '10.0.0.100',
  port: 80,
  mode: 'port',
  source: 'config',
  pinned: null,
  members: [{ backend: 'web1', priority: 100, weight: 100, state: 'up', role: 'active' }],
  serving: ['web1'],
  failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null },
};

export const VIP: VipView = { vip: '10.0.0.100', source: 'config', services: ['10.0.0.100:80'], arp: true };
export const NEIGHBOUR: NeighbourView = { ip: '10.0.1.21', mac: '02:00:00:00:01:21', ageSeconds: 7 };
export const COUNTERS: CounterSnapshot = snapshotCounters(new Float64Array(COUNTER_SLOTS).fill(5));

export const STATUS: StatusView = {
  version: '0.1.0-test',
  pid: 4242,
  uptimeSeconds: 12,
  interface: 'eth0',
  mode: 'dsr',
  mac: '02:00:5e:00:00:01',
  configFile: '/etc/vipgate.yaml',
  stateFile: null,
  generation: 3,
  vips: 1,
  services: 1,
  backends: { total: 1, up: 1, drain: 0, down: 0 },
  flows: { active: 3, capacity: 65536 },
  counters: COUNTERS.counters,
  drops: COUNTERS.drops,
  worker: null,
  sharedState: null,
};

export const FLOW_PAGE: FlowPage = {
  flows: [{
    client: '192.0.2.7:40000', vip: '10.0.0.100:80', backend: 'web1', backendIp: '10.0.1.21',
    state: 'established', ageSeconds: 4, idleSeconds: 1, packetsIn: 10, packetsOut: 9,
  }],
  next: 'c2',
};

export const EVENT_PAGE: EventPage = {
  events: [{ seq: 1, time: '2026-01-01T00:00:02.000Z', type: 'health_down', message: 'backend web1 up -> down (connection refused)', backend: 'web1', from: 'up', to: 'down', reason: 'connection refused' }],
  next: 1,
};

export const RELOAD: ReloadResult = { generation: 4, changes: ['backend web2 added'] };

export class FakeControl implements ControlApi {
  readonly calls: Call[] = [];
  /** Method -> what it throws (every call, until cleared). */
  readonly throws = new Map<Method, unknown>();
  /** What register() reports as `created`. */
  created = true;

  private rec(method: Method, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.throws.has(method)) throw this.throws.get(method);
  }

  /** Calls to mutating methods so far. */
  mutations(): Call[] {
    return this.calls.filter((c) => MUTATIONS.includes(c.method));
  }

  last(): Call | undefined {
    return this.calls[this.calls.length - 1];
  }

  reset(): void {
    this.calls.length = 0;
    this.throws.clear();
    this.created = true;
  }

  status(): StatusView { this.rec('status'); return STATUS; }
  vips(): VipView[] { this.rec('vips'); return [VIP]; }
  services(): ServiceView[] { this.rec('services'); return [SERVICE]; }
  backends(): BackendView[] { this.rec('backends'); return [BACKEND]; }
  backend(name: string): BackendView { this.rec('backend', name); return { ...BACKEND, name }; }
  flows(q: FlowQuery): FlowPage { this.rec('flows', q); return FLOW_PAGE; }
  neighbours(): NeighbourView[] { this.rec('neighbours'); return [NEIGHBOUR]; }
  counters(): CounterSnapshot { this.rec('counters'); return COUNTERS; }
  register(body: unknown): { backend: BackendView; created: boolean } {
    this.rec('register', body);
    return { backend: BACKEND, created: this.created };
  }
  setBackend(name: string, body: unknown): BackendView { this.rec('setBackend', name, body); return { ...BACKEND, name }; }
  unregister(name: string, force: boolean): BackendView { this.rec('unregister', name, force); return { ...BACKEND, name, leaving: true }; }
  switchService(service: string, body: unknown): ServiceView { this.rec('switchService', service, body); return { ...SERVICE, service }; }
  reload(): ReloadResult { this.rec('reload'); return RELOAD; }
  transitions(): Array<{ backend: string; to: 'up' | 'drain' | 'down' | 'removed'; count: number }> {
    this.rec('transitions');
    return [{ backend: 'web1', to: 'down', count: 1 }];
  }
  reloads(): { ok: number; failed: number } { this.rec('reloads'); return { ok: 1, failed: 0 }; }
  events(q: EventQuery): EventPage { this.rec('events', q); return EVENT_PAGE; }
}
