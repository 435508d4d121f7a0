// /metrics: a counters array with a distinct known value in every slot and a fake control API,
// scraped and parsed the way Prometheus would (parse-prometheus-text-format), checking each
// family's TYPE, HELP, label sets and values, that every drop reason is exported, that things
// gone from the API are gone from the next scrape, and that scraping does not grow anything.

import t from 'tap';
import { register as globalRegistry } from 'prom-client';
import { createMetrics, type MetricsSource } from '../src/obs/metrics';
import { COUNTER_SLOTS, Ctr, Drop, DROP_REASONS } from '../src/dataplane/counters';
import type { AdminState, BackendView, ServiceView, StatusView } from '../src/control/api-types';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const parse = require('parse-prometheus-text-format') as (s: string) => Array<{
  name: string; help: string; type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: unknown }>;
}>;
type Family = ReturnType<typeof parse>[number];

function backend(name: string, ip: string, state: AdminState, weight: number, flows: number, connections: number): BackendView {
  return {
    name, ip, mac: null, macSource: null, state, weight, source: 'api', serves: [],
    flows, connections, lease: null, leaving: false,
    health: { state: state === 'down' ? 'down' : 'up', check: 'tcp :80', since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null },
  };
}

function service(svc: string, members: string[], serving: string[]): ServiceView {
  const [vip, port] = svc.split(':');
  return {
    service: svc, vip: vip!, port: Number(port ?? 0), mode: port ? 'port' : 'ip', source: 'config', pinned: null,
    members: members.map((b) => ({ backend: b, priority: 100, weight: 100, state: 'up', role: serving.includes(b) ? 'active' : 'standby' })),
    serving,
    failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null },
  };
}

/** A fake API whose answers the test changes between scrapes; counts calls. */
function fakeApi() {
  const f = {
    backends: [
      backend('web1', '10.0.0.11', 'up', 100, 3, 40),
      backend('web2', '10.0.0.12', 'drain', 50, 1, 7),
      backend('db1', '10.0.0.21', 'down', 0, 0, 0),
    ],
    services: [
      service('192.0.2.10:80', ['web1', 'web2'], ['web1']),
      service('192.0.2.20', ['db1'], []),
    ],
    transitions: [
      { backend: 'web2', to: 'drain' as const, count: 2 },
      { backend: 'db1', to: 'down' as const, count: 1 },
      { backend: 'old', to: 'removed' as const, count: 1 },
    ],
    reloads: { ok: 4, failed: 1 },
    generation: 17,
    calls: { backends: 0, services: 0, transitions: 0, reloads: 0, status: 0 },
  };
  const api: MetricsSource['api'] = {
    backends: () => { f.calls.backends++; return f.backends; },
    services: () => { f.calls.services++; return f.services; },
    transitions: () => { f.calls.transitions++; return f.transitions; },
    reloads: () => { f.calls.reloads++; return f.reloads; },
    status: () => { f.calls.status++; return { generation: f.generation } as StatusView; },
  };
  return { f, api };
}

/** Every slot a distinct value: 1000 + index. */
function knownCounters(): Float64Array {
  const c = new Float64Array(COUNTER_SLOTS);
  for (let i = 0; i < c.length; i++) c[i] = 1000 + i;
  return c;
}

async function scrape(text: () => Promise<string>): Promise<Map<string, Family>> {
  const fams = parse(await text());
  const m = new Map<string, Family>();
  for (const f of fams) m.set(f.name, f);
  return m;
}

function fam(m: Map<string, Family>, name: string): Family {
  const f = m.get(name);
  if (!f) throw new Error(`no family ${name}`);
  return f;
}

/** The series of a family as "k=v,k=v" (sorted) -> numeric value. */
function series(f: Family): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of f.metrics) {
    const key = Object.entries(s.labels ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(',');
    out.set(key, Number(s.value));
  }
  return out;
}

const EXPECTED: Array<[string, 'COUNTER' | 'GAUGE']> = [
  ['vipgate_frames_total', 'COUNTER'], ['vipgate_bytes_total', 'COUNTER'], ['vipgate_drops_total', 'COUNTER'],
  ['vipgate_arp_replies_total', 'COUNTER'], ['vipgate_arp_requests_seen_total', 'COUNTER'], ['vipgate_garp_sent_total', 'COUNTER'],
  ['vipgate_arp_requests_sent_total', 'COUNTER'], ['vipgate_neighbours_learned_total', 'COUNTER'],
  ['vipgate_neighbours_updated_total', 'COUNTER'], ['vipgate_neighbour_table_full_total', 'COUNTER'],
  ['vipgate_flows_created_total', 'COUNTER'], ['vipgate_flows_expired_total', 'COUNTER'], ['vipgate_flows_reused_total', 'COUNTER'],
  ['vipgate_syn_retransmits_total', 'COUNTER'], ['vipgate_flows_active', 'GAUGE'], ['vipgate_flows_capacity', 'GAUGE'],
  ['vipgate_forwarded_total', 'COUNTER'], ['vipgate_tx_errors_total', 'COUNTER'],
  ['vipgate_icmp_echo_replies_total', 'COUNTER'], ['vipgate_icmp_errors_forwarded_total', 'COUNTER'],
  ['vipgate_rx_ring_drops_total', 'COUNTER'], ['vipgate_rx_batches_total', 'COUNTER'], ['vipgate_rx_wakeups_total', 'COUNTER'], ['vipgate_rx_ring_wait_batches_total', 'COUNTER'],
  ['vipgate_link_errors_total', 'COUNTER'], ['vipgate_tables_bank_rejected_total', 'COUNTER'],
  ['vipgate_state_records_dropped_total', 'COUNTER'], ['vipgate_state_records_repaired_total', 'COUNTER'],
  ['vipgate_backend_flows', 'GAUGE'], ['vipgate_backend_connections_total', 'COUNTER'], ['vipgate_backend_weight', 'GAUGE'],
  ['vipgate_backend_state', 'GAUGE'], ['vipgate_backend_up', 'GAUGE'], ['vipgate_backend_transitions_total', 'COUNTER'],
  ['vipgate_service_serving', 'GAUGE'], ['vipgate_service_members', 'GAUGE'],
  ['vipgate_config_reloads_total', 'COUNTER'], ['vipgate_state_generation', 'GAUGE'], ['vipgate_backend_health', 'GAUGE'],
  ['vipgate_worker_restarts_total', 'COUNTER'], ['vipgate_worker_up', 'GAUGE'],
];

/** Unlabelled counters straight from one slot. */
const SLOTS: Array<[string, number]> = [
  ['vipgate_arp_replies_total', Ctr.arp_replies], ['vipgate_arp_requests_seen_total', Ctr.arp_requests_seen],
  ['vipgate_garp_sent_total', Ctr.garp_sent], ['vipgate_arp_requests_sent_total', Ctr.arp_requests_sent],
  ['vipgate_neighbours_learned_total', Ctr.neigh_learned], ['vipgate_neighbours_updated_total', Ctr.neigh_updated],
  ['vipgate_neighbour_table_full_total', Ctr.neigh_table_full], ['vipgate_flows_created_total', Ctr.flows_created],
  ['vipgate_flows_expired_total', Ctr.flows_expired], ['vipgate_flows_reused_total', Ctr.flows_reused],
  ['vipgate_syn_retransmits_total', Ctr.syn_retransmits], ['vipgate_tx_errors_total', Ctr.tx_errors],
  ['vipgate_flows_active', Ctr.flows_active], ['vipgate_icmp_echo_replies_total', Ctr.icmp_echo_replies],
  ['vipgate_flows_active', Ctr.flows_active],
  ['vipgate_rx_ring_drops_total', Ctr.rx_ring_drops], ['vipgate_rx_batches_total', Ctr.rx_batches],
  ['vipgate_rx_wakeups_total', Ctr.rx_wakeups], ['vipgate_link_errors_total', Ctr.link_errors],
  ['vipgate_tables_bank_rejected_total', Ctr.tables_bank_rejected],
  ['vipgate_state_records_dropped_total', Ctr.state_records_dropped], ['vipgate_state_records_repaired_total', Ctr.state_records_repaired],
];

t.test('families, TYPE and HELP', async (t) => {
  const { api } = fakeApi();
  const m = createMetrics({ counters: knownCounters(), flowCapacity: 65536, api }, { processMetrics: false });
  t.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  const fams = await scrape(m.text);
  for (const [name, type] of EXPECTED) {
    const f = fams.get(name);
    if (!t.ok(f, `${name} exported`) || !f) continue;
    t.equal(f.type, type, `${name} is a ${type}`);
    t.ok(f.help.length > 20 && f.help !== name, `${name} has a real HELP line`);
  }
  t.same([...fams.keys()].filter((n) => n.startsWith('vipgate_')).sort(), EXPECTED.map(([n]) => n).sort(), 'exactly these vipgate families');
  t.notOk([...fams.keys()].some((n) => !n.startsWith('vipgate_')), 'no process metrics when processMetrics is false');
});

t.test('health: per-backend health state, checks, events and hook calls', async (t) => {
  const { api } = fakeApi();
  const health = {
    checkCounts: () => ({ ok: 120, failed: 3 }),
    typeCounts: () => [{ type: 'health_down', count: 2 }, { type: 'failover', count: 1 }],
    hookStats: () => ({ sent: 2, failed: 1, dropped: 0, queued: 0 }),
  };
  const fams = await scrape(createMetrics({ counters: knownCounters(), flowCapacity: 65536, api, health }, { processMetrics: false }).text);
  t.equal(series(fam(fams, 'vipgate_backend_health')).size, 12, 'one series per backend and health state (unknown, up, down, unchecked)');
  t.equal(series(fam(fams, 'vipgate_backend_health')).get('backend=db1,state=down'), 1);
  t.same(series(fam(fams, 'vipgate_backend_health')).get('backend=web1,state=up'), 1);
  t.same(series(fam(fams, 'vipgate_backend_health')).get('backend=web1,state=down'), 0);
  t.same(series(fam(fams, 'vipgate_health_checks_total')), new Map([['result=ok', 120], ['result=failed', 3]]));
  t.same(series(fam(fams, 'vipgate_events_total')), new Map([['type=health_down', 2], ['type=failover', 1]]));
  t.same(series(fam(fams, 'vipgate_event_hooks_total')), new Map([['result=sent', 2], ['result=failed', 1], ['result=dropped', 0]]));
});

t.test('packet path counters: values from the array', async (t) => {
  const c = knownCounters();
  const { api } = fakeApi();
  const m = createMetrics({ counters: c, flowCapacity: 65536, api }, { processMetrics: false });
  let fams = await scrape(m.text);

  t.same(series(fam(fams, 'vipgate_frames_total')), new Map([['direction=in', c[Ctr.frames_in]], ['direction=out', c[Ctr.frames_out]]]));
  t.same(series(fam(fams, 'vipgate_bytes_total')), new Map([['direction=in', c[Ctr.bytes_in]], ['direction=out', c[Ctr.bytes_out]]]));
  t.same(series(fam(fams, 'vipgate_forwarded_total')),
    new Map([['direction=to_backend', c[Ctr.forwarded_to_backend]], ['direction=to_client', c[Ctr.forwarded_to_client]]]));
  t.same(series(fam(fams, 'vipgate_icmp_errors_forwarded_total')),
    new Map([['direction=to_backend', c[Ctr.icmp_errors_to_backend]], ['direction=to_client', c[Ctr.icmp_errors_to_client]]]));
  for (const [name, i] of SLOTS) t.same(series(fam(fams, name)), new Map([['', c[i]]]), name);
  t.same(series(fam(fams, 'vipgate_flows_capacity')), new Map([['', 65536]]));

  const drops = series(fam(fams, 'vipgate_drops_total'));
  t.equal(drops.size, DROP_REASONS.length, 'one series per drop reason');
  for (const r of DROP_REASONS) t.equal(drops.get(`reason=${r}`), c[Drop[r]], `drop ${r}`);

  // A scrape reads the array as it is now; a fresh (all zero) array still lists every reason.
  c[Ctr.frames_in] = 5e9;
  c[Drop.no_backend] = 0;
  fams = await scrape(m.text);
  t.equal(series(fam(fams, 'vipgate_frames_total')).get('direction=in'), 5e9);
  t.equal(series(fam(fams, 'vipgate_drops_total')).get('reason=no_backend'), 0);

  const zero = createMetrics({ counters: new Float64Array(COUNTER_SLOTS), flowCapacity: 1, api }, { processMetrics: false });
  const zd = series(fam(await scrape(zero.text), 'vipgate_drops_total'));
  t.equal(zd.size, DROP_REASONS.length, 'all-zero drops: every reason still present');
  t.ok([...zd.values()].every((v) => v === 0));
});

t.test('a bad slot value does not break the scrape', async (t) => {
  const c = knownCounters();
  c[Ctr.frames_in] = NaN;
  c[Ctr.garp_sent] = -1;
  c[Ctr.flows_active] = Infinity;
  const { api } = fakeApi();
  const m = createMetrics({ counters: c, flowCapacity: 8, api }, { processMetrics: false });
  const fams = await scrape(m.text);
  t.equal(series(fam(fams, 'vipgate_frames_total')).get('direction=in'), 0);
  t.equal(series(fam(fams, 'vipgate_garp_sent_total')).get(''), 0);
  t.equal(series(fam(fams, 'vipgate_flows_active')).get(''), 0);
});

t.test('backends, services, transitions, reloads, generation', async (t) => {
  const { f, api } = fakeApi();
  const m = createMetrics({ counters: knownCounters(), flowCapacity: 16, api }, { processMetrics: false });
  const fams = await scrape(m.text);

  t.same(series(fam(fams, 'vipgate_backend_flows')), new Map([
    ['backend=web1,ip=10.0.0.11', 3], ['backend=web2,ip=10.0.0.12', 1], ['backend=db1,ip=10.0.0.21', 0]]));
  t.same(series(fam(fams, 'vipgate_backend_connections_total')), new Map([
    ['backend=web1,ip=10.0.0.11', 40], ['backend=web2,ip=10.0.0.12', 7], ['backend=db1,ip=10.0.0.21', 0]]));
  t.same(series(fam(fams, 'vipgate_backend_weight')), new Map([
    ['backend=web1,ip=10.0.0.11', 100], ['backend=web2,ip=10.0.0.12', 50], ['backend=db1,ip=10.0.0.21', 0]]));
  t.same(series(fam(fams, 'vipgate_backend_up')), new Map([
    ['backend=web1,ip=10.0.0.11', 1], ['backend=web2,ip=10.0.0.12', 0], ['backend=db1,ip=10.0.0.21', 0]]));

  const st = series(fam(fams, 'vipgate_backend_state'));
  t.equal(st.size, 9, 'three states per backend');
  for (const b of f.backends) {
    for (const s of ['up', 'drain', 'down']) t.equal(st.get(`backend=${b.name},state=${s}`), b.state === s ? 1 : 0, `${b.name} ${s}`);
  }

  t.same(series(fam(fams, 'vipgate_service_serving')), new Map([
    ['backend=web1,service=192.0.2.10:80', 1], ['backend=web2,service=192.0.2.10:80', 0], ['backend=db1,service=192.0.2.20', 0]]));
  t.same(series(fam(fams, 'vipgate_service_members')), new Map([['service=192.0.2.10:80', 2], ['service=192.0.2.20', 1]]));
  t.same(series(fam(fams, 'vipgate_backend_transitions_total')), new Map([
    ['backend=web2,to=drain', 2], ['backend=db1,to=down', 1], ['backend=old,to=removed', 1]]));
  t.same(series(fam(fams, 'vipgate_config_reloads_total')), new Map([['result=ok', 4], ['result=failed', 1]]));
  t.same(series(fam(fams, 'vipgate_state_generation')), new Map([['', 17]]));

  t.same(f.calls, { backends: 1, services: 1, transitions: 1, reloads: 1, status: 1 }, 'one call of each API method per scrape');
});

t.test('what is gone from the API is gone from the next scrape', async (t) => {
  const { f, api } = fakeApi();
  const m = createMetrics({ counters: knownCounters(), flowCapacity: 16, api }, { processMetrics: false });
  let fams = await scrape(m.text);
  t.ok(series(fam(fams, 'vipgate_backend_flows')).has('backend=web2,ip=10.0.0.12'));

  f.backends = f.backends.filter((b) => b.name !== 'web2');
  f.services = [service('192.0.2.10:80', ['web1'], ['web1'])];
  f.transitions = [...f.transitions, { backend: 'web2', to: 'removed', count: 1 }];
  f.reloads = { ok: 5, failed: 1 };
  f.generation = 18;
  fams = await scrape(m.text);

  for (const name of ['vipgate_backend_flows', 'vipgate_backend_connections_total', 'vipgate_backend_weight', 'vipgate_backend_up', 'vipgate_backend_state']) {
    const keys = [...series(fam(fams, name)).keys()];
    t.notOk(keys.some((k) => k.includes('backend=web2')), `${name}: web2 gone`);
    t.ok(keys.some((k) => k.includes('backend=web1')), `${name}: web1 still there`);
  }
  t.same(series(fam(fams, 'vipgate_service_serving')), new Map([['backend=web1,service=192.0.2.10:80', 1]]), 'service 192.0.2.20 gone');
  t.same(series(fam(fams, 'vipgate_service_members')), new Map([['service=192.0.2.10:80', 1]]));
  t.equal(series(fam(fams, 'vipgate_backend_transitions_total')).get('backend=web2,to=removed'), 1);
  t.equal(series(fam(fams, 'vipgate_config_reloads_total')).get('result=ok'), 5);
  t.equal(series(fam(fams, 'vipgate_state_generation')).get(''), 18);

  // No backends at all: the families stay (HELP and TYPE), with no series.
  f.backends = [];
  f.services = [];
  fams = await scrape(m.text);
  t.equal(fam(fams, 'vipgate_backend_flows').metrics.length, 0);
  t.equal(fam(fams, 'vipgate_service_serving').metrics.length, 0);
});

t.test('scraping 1000 times grows nothing', async (t) => {
  const { f, api } = fakeApi();
  const c = knownCounters();
  const m = createMetrics({ counters: c, flowCapacity: 16, api }, { processMetrics: false });
  const first = await m.text();
  const nMetrics = m.registry.getMetricsAsArray().length;
  const json0 = await m.registry.getMetricsAsJSON();
  const nSeries = json0.reduce((a, x) => a + x.values.length, 0);
  let last = first;
  const callsBefore = f.calls.backends;
  for (let i = 0; i < 1000; i++) {
    c[Ctr.frames_in]!++;
    last = await m.text();
  }
  t.equal(f.calls.backends - callsBefore, 1000, 'one backends() call per scrape');
  t.equal(m.registry.getMetricsAsArray().length, nMetrics, 'same number of metrics');
  const json1 = await m.registry.getMetricsAsJSON();
  t.equal(json1.reduce((a, x) => a + x.values.length, 0), nSeries, 'same number of series');
  t.equal(last.split('\n').length, first.split('\n').length, 'same number of lines');
  t.equal(series(fam(await scrape(m.text), 'vipgate_frames_total')).get('direction=in'), 1000 + Ctr.frames_in + 1000, 'values are absolute, not summed per scrape');
});

t.test('process metrics, private registry', async (t) => {
  const before = globalRegistry.getMetricsAsArray().length;
  const { api } = fakeApi();
  const a = createMetrics({ counters: knownCounters(), flowCapacity: 16, api });
  const b = createMetrics({ counters: knownCounters(), flowCapacity: 16, api });
  t.equal(globalRegistry.getMetricsAsArray().length, before, 'nothing registered globally');
  t.not(a.registry, b.registry, 'two instances, two registries');
  const fams = await scrape(a.text);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(fams.has(name), `${name} exported`);
  }
  t.ok(fams.has('vipgate_frames_total'), 'vipgate families beside them');
  t.ok((await scrape(b.text)).has('nodejs_eventloop_lag_seconds'), 'the second instance has its own process metrics');
});
