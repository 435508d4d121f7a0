// The runtime API end to end: the real Controller (config file + state file + an injectable
// clock) behind the real HTTP server, frames pushed straight into the dataplane to see where
// new and existing flows go. Every endpoint, its happy path and its bad input: status, the
// stable error code, a message that says what to fix, the field at fault, and that a rejected
// request changes nothing (views, generation and the state file's bytes are compared).

import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  startHarness, defaultYaml, macFor, names, type Harness, type Res,
  OUR_MAC, WEB1_MAC, WEB2_MAC, TIMEOUTS,
} from './helpers/control-harness';
import { API_MAX_BODY } from '../src/control/api-types';
import { DROP_REASONS } from '../src/dataplane/counters';
import { VipgateError } from '../src/control/errors';

const parseProm = require('parse-prometheus-text-format') as (s: string) => Array<{
  name: string; help: string; type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string> }>;
}>;

// ---- helpers ----

/** A registration body: backend a1 on 10.0.2.1 serving a new VIP's port 80. */
function reg(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'a1', ip: '10.0.2.1', mac: '02:00:00:00:02:01', serves: '10.0.0.200:80', ...over };
}

interface Want { status: number; code: string; msg: RegExp; field?: string | undefined }

/** Send a request that must be rejected; assert the answer and that nothing changed. */
async function rejected(t: Test, h: Harness, what: string, method: string, p: string, body: unknown, want: Want, headers?: Record<string, string | number | null>): Promise<Res> {
  const before = h.snapshot();
  const r = await h.req(method, p, body, headers);
  t.equal(r.status, want.status, `${what}: status ${want.status}`);
  t.equal(r.json?.error?.code, want.code, `${what}: code ${want.code}`);
  t.match(r.json?.error?.message, want.msg, `${what}: the message says what to fix`);
  if ('field' in want) t.equal(r.json?.error?.field, want.field, `${what}: field ${want.field}`);
  t.equal(h.snapshot(), before, `${what}: nothing changed (views, generation, state file)`);
  return r;
}

async function ok(t: Test, h: Harness, method: string, p: string, body?: unknown, status = 200): Promise<any> {
  const r = await h.req(method, p, body);
  t.equal(r.status, status, `${method} ${p} -> ${status}${r.status !== status ? ` (got ${r.text.slice(0, 300)})` : ''}`);
  return r.json;
}

async function backendsOf(h: Harness): Promise<any[]> { return (await h.req('GET', '/v1/backends')).json.backends; }
async function servicesOf(h: Harness): Promise<any[]> { return (await h.req('GET', '/v1/services')).json.services; }
async function vipsOf(h: Harness): Promise<any[]> { return (await h.req('GET', '/v1/vips')).json.vips; }
async function generation(h: Harness): Promise<number> { return (await h.req('GET', '/v1/status')).json.generation; }
function svc(list: any[], key: string): any { return list.find((s) => s.service === key); }

/** Follow `next` from the first page until null; every flow seen, in order. */
async function allFlows(t: Test, h: Harness, query: string): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const q = query + (cursor === null ? '' : `${query ? '&' : ''}cursor=${cursor}`);
    const r = await h.req('GET', `/v1/flows${q ? `?${q}` : ''}`);
    if (r.status !== 200) { t.fail(`GET /v1/flows?${q}: ${r.status} ${r.text}`); return out; }
    out.push(...r.json.flows);
    cursor = r.json.next;
    if (cursor === null) return out;
  }
  t.fail('paging did not end');
  return out;
}

const flowKey = (f: any) => `${f.client}>${f.vip}`;

async function harness(t: Test, o: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(o);
  t.teardown(() => h.close());
  return h;
}

// ---------------------------------------------------------------------------------------------

t.test('GET views: status, vips, services, backends, neighbours, counters', async (t) => {
  const h = await harness(t);
  const st = await ok(t, h, 'GET', '/v1/status');
  t.match(st, {
    version: '0.0.0-test', pid: process.pid, uptimeSeconds: 0, interface: null, mode: 'dsr', mac: OUR_MAC,
    configFile: h.configFile, stateFile: h.stateFile, generation: 0, vips: 2, services: 2,
    backends: { total: 2, up: 2, drain: 0, down: 0 }, flows: { active: 0, capacity: 16384 },
  });
  t.same(Object.keys(st.drops).sort(), [...DROP_REASONS].sort(), 'status has every drop reason');
  t.equal(st.counters.frames_in, 0);

  t.same((await ok(t, h, 'GET', '/v1/vips')).vips, [
    { vip: '10.0.0.100', source: 'config', services: ['10.0.0.100'], arp: true },
    { vip: '10.0.0.101', source: 'config', services: ['10.0.0.101:80'], arp: true },
  ]);
  t.same((await ok(t, h, 'GET', '/v1/services')).services, [
    { service: '10.0.0.100', vip: '10.0.0.100', port: 0, mode: 'ip', source: 'config', pinned: null,
      members: [{ backend: 'web1', priority: 255, weight: 100, state: 'up', role: 'active' }], serving: ['web1'], failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null } },
    { service: '10.0.0.101:80', vip: '10.0.0.101', port: 80, mode: 'port', source: 'config', pinned: null,
      members: [
        { backend: 'web1', priority: 255, weight: 100, state: 'up', role: 'active' },
        { backend: 'web2', priority: 254, weight: 100, state: 'up', role: 'standby' },
      ], serving: ['web1'], failover: { spares: null, preempt: true, holdDownMs: 0, onBackendDown: 'reset', takenOverBy: null, failbackAt: null } },
  ]);
  const web1 = {
    name: 'web1', ip: '10.0.1.21', mac: WEB1_MAC, macSource: 'given', state: 'up', weight: 100, source: 'config',
    serves: [{ service: '10.0.0.100', priority: 255, role: 'active', pinned: null }, { service: '10.0.0.101:80', priority: 255, role: 'active', pinned: null }],
    flows: 0, connections: 0, lease: null, leaving: false,
    health: { state: 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null },
  };
  const bs = (await ok(t, h, 'GET', '/v1/backends')).backends;
  t.same(bs[0], web1);
  t.match(bs[1], { name: 'web2', ip: '10.0.1.22', state: 'up', serves: [{ service: '10.0.0.101:80', priority: 254, role: 'standby' }] });
  t.same((await ok(t, h, 'GET', '/v1/backends/web1')).backend, web1);
  await rejected(t, h, 'unknown backend', 'GET', '/v1/backends/nope', undefined,
    { status: 404, code: 'EAPI_UNKNOWN_BACKEND', msg: /no backend named nope; the backends are: web1, web2/ });

  // Traffic shows in the views: a flow to web1, a drop, a learned neighbour.
  t.equal(h.syn('192.0.2.7:40000', '10.0.0.101', 80), 'web1');
  t.equal(h.syn('192.0.2.7:40001', '10.0.0.101', 22), 'no_service');
  t.equal(h.arpFrom('10.0.1.99', '02:00:00:00:09:99'), 'arp_reply');
  const st2 = await ok(t, h, 'GET', '/v1/status');
  t.match(st2, { flows: { active: 1 }, counters: { frames_in: 3, flows_created: 1, forwarded_to_backend: 1, neigh_learned: 1 }, drops: { no_service: 1, arp_reply: 1 } });
  t.match((await ok(t, h, 'GET', '/v1/backends/web1')).backend, { flows: 1, connections: 1 });
  const ctr = await ok(t, h, 'GET', '/v1/counters');
  t.match(ctr, { counters: { frames_in: 3, frames_out: 1 }, drops: { no_service: 1 } });
  t.same(Object.keys(ctr.drops).sort(), [...DROP_REASONS].sort());
  t.same((await ok(t, h, 'GET', '/v1/neighbours')).neighbours, [{ ip: '10.0.1.99', mac: '02:00:00:00:09:99', ageSeconds: 0 }]);
  h.advance(5000);
  t.same((await ok(t, h, 'GET', '/v1/neighbours')).neighbours, [{ ip: '10.0.1.99', mac: '02:00:00:00:09:99', ageSeconds: 5 }]);
  t.equal((await ok(t, h, 'GET', '/v1/status')).uptimeSeconds, 5);

  // Not a path, not a method.
  await rejected(t, h, 'no such path', 'GET', '/v1/nothing', undefined, { status: 404, code: 'EAPI_NOT_FOUND', msg: /no such path.*the API serves/ });
  await rejected(t, h, 'method', 'PUT', '/v1/backends', {}, { status: 405, code: 'EAPI_METHOD_NOT_ALLOWED', msg: /PUT is not allowed on \/v1\/backends; use GET, POST/ });
  await rejected(t, h, 'query on status', 'GET', '/v1/status?x=1', undefined, { status: 400, code: 'EAPI_INVALID', msg: /unknown query parameter "x"; this request takes no query parameters/, field: 'x' });
});

t.test('register: created, listed, announced, steered to; renewal; conflicts', async (t) => {
  const h = await harness(t);
  const r = await h.req('POST', '/v1/backends', reg());
  t.equal(r.status, 201, 'a new registration is 201');
  t.same(r.json, {
    created: true,
    backend: {
      name: 'a1', ip: '10.0.2.1', mac: '02:00:00:00:02:01', macSource: 'given', state: 'up', weight: 100, source: 'api',
      serves: [{ service: '10.0.0.200:80', priority: 100, role: 'active', pinned: null }], flows: 0, connections: 0, lease: null, leaving: false,
      health: { state: 'unchecked', check: null, since: null, lastCheck: null, lastLatencyMs: null, lastFailure: null, lastFailureAt: null },
    },
  });
  t.same(names(await backendsOf(h)), ['a1', 'web1', 'web2']);
  t.same((await vipsOf(h)).find((v) => v.vip === '10.0.0.200'), { vip: '10.0.0.200', source: 'api', services: ['10.0.0.200:80'], arp: true }, 'the new VIP is listed, source api');
  t.match(svc(await servicesOf(h), '10.0.0.200:80'), { vip: '10.0.0.200', port: 80, mode: 'port', source: 'api', pinned: null, serving: ['a1'], members: [{ backend: 'a1', priority: 100, role: 'active' }] });
  t.equal(await generation(h), 1);
  t.match(JSON.parse(h.stateText()), { version: 1, generation: 1, registrations: [{ name: 'a1', ip: '10.0.2.1', serves: ['10.0.0.200:80'], leaving: false }] }, 'persisted');
  t.equal(h.syn('192.0.2.7', '10.0.0.200', 80), 'a1', 'a SYN to the new VIP goes to the new backend');
  t.same(h.seg('192.0.2.7', '10.0.0.200', 80), { verdict: 'tx', backend: 'a1', dstMac: '02:00:00:00:02:01' }, 'and its flow is forwarded to its MAC');
  t.equal(h.syn('192.0.2.7', '10.0.0.200', 81), 'no_service', 'other ports of the new VIP have no service');

  // Renewal: the same body again (MAC spelled differently, serves as a list) is 200, created false, nothing written.
  const before = h.snapshot();
  const renew = await h.req('POST', '/v1/backends', reg({ mac: '02:00:00:00:02:01'.toUpperCase(), serves: ['10.0.0.200:80'] }));
  t.equal(renew.status, 200);
  t.equal(renew.json.created, false);
  t.match(renew.json.backend, { name: 'a1', flows: 1, connections: 1 });
  t.equal(h.snapshot(), before, 'a renewal changes nothing (generation, state file)');

  // Conflicts.
  await rejected(t, h, 'same name, other ip', 'POST', '/v1/backends', reg({ ip: '10.0.2.2' }),
    { status: 409, code: 'EAPI_EXISTS', msg: /a1 is already registered with ip 10\.0\.2\.1.*unregister it first/, field: 'name' });
  await rejected(t, h, 'same name, other priority', 'POST', '/v1/backends', reg({ priority: 7 }),
    { status: 409, code: 'EAPI_EXISTS', msg: /already registered/, field: 'name' });
  await rejected(t, h, 'name of a config backend', 'POST', '/v1/backends', reg({ name: 'web1', ip: '10.0.2.9' }),
    { status: 409, code: 'EAPI_CONFIG_OWNED', msg: /web1 is defined in the config file .*register under another name/, field: 'name' });
  await rejected(t, h, 'ip of a config backend', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.1.21' }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.1\.21 is already the address of backend web1; each backend needs its own IP/, field: 'ip' });
  await rejected(t, h, 'ip of a registered backend', 'POST', '/v1/backends', reg({ name: 'b1', mac: null }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.2\.1 is already the address of backend a1/, field: 'ip' });
  await rejected(t, h, 'ip equal to a config VIP', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.0.100', mac: null }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.0\.100 is a VIP \(config\); a backend needs its own real address/, field: 'ip' });
  await rejected(t, h, 'ip equal to a VIP a registration added', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.0.200', mac: null, serves: '10.0.0.101:80' }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.0\.200 is a VIP \(api, served by backend a1\); a backend needs its own real address/, field: 'ip' });
  await rejected(t, h, 'serves a backend address', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.2.9', mac: null, serves: ['10.0.0.200:80', '10.0.1.22:80'] }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.1\.22 is the address of backend web2, not a VIP/, field: 'serves' });
  await rejected(t, h, 'serves a registered backend\'s address', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.2.9', mac: null, serves: '10.0.2.1:80' }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.2\.1 is the address of backend a1, not a VIP/, field: 'serves' });
  await rejected(t, h, 'own MAC', 'POST', '/v1/backends', reg({ name: 'b1', ip: '10.0.2.9', mac: OUR_MAC }),
    { status: 400, code: 'EAPI_INVALID', msg: /vipgate's own MAC/, field: 'mac' });
});

t.test('register in nat mode: the gateway is neither a backend address nor a VIP to serve', async (t) => {
  const h = await harness(t, { yaml: defaultYaml({ mode: 'nat' }) });
  t.same((await vipsOf(h)).find((v) => v.vip === '10.0.1.1'), { vip: '10.0.1.1', source: 'nat_gateway', services: [], arp: true });
  await rejected(t, h, 'serves the gateway', 'POST', '/v1/backends', reg({ serves: '10.0.1.1:80' }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.1\.1 is the nat gateway address, not a VIP/, field: 'serves' });
  await rejected(t, h, 'at the gateway address', 'POST', '/v1/backends', reg({ ip: '10.0.1.1' }),
    { status: 409, code: 'EAPI_CONFLICT', msg: /10\.0\.1\.1 is a VIP \(nat_gateway\); a backend needs its own real address/, field: 'ip' });
  await ok(t, h, 'POST', '/v1/backends', reg(), 201);
  t.equal(h.syn('192.0.2.7', '10.0.0.200', 80), 'a1', 'nat: steered to the registration too');
});

t.test('register: bad input is 400 naming the field, and changes nothing', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', reg(), 201);
  const P = '/v1/backends';
  const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    ['invalid ip', { ip: '10.0.2' }, 'ip', /"10\.0\.2" is not an IPv4 address; write the backend's address as a dotted quad/],
    ['ip not a string', { ip: 167772673 }, 'ip', /is not an IPv4 address/],
    ['multicast ip', { ip: '224.0.0.5' }, 'ip', /must be a unicast address/],
    ['invalid mac', { mac: '02:00:00:00:02' }, 'mac', /is not a MAC address; write six hex bytes/],
    ['multicast mac', { mac: '03:00:00:00:02:01' }, 'mac', /is not a unicast MAC/],
    ['port 0', { serves: '10.0.0.200:0' }, 'serves', /port 0 is out of range; use 1\.\.65535/],
    ['port 70000', { serves: '10.0.0.200:70000' }, 'serves', /port 70000 is out of range; use 1\.\.65535/],
    ['port 70000 in a list', { serves: ['10.0.0.200:80', '10.0.0.200:70000'] }, 'serves[1]', /port 70000 is out of range/],
    ['priority 0', { priority: 0 }, 'priority', /0 is out of range; priority, higher preferred must be 1\.\.255/],
    ['priority 1.5', { priority: 1.5 }, 'priority', /expected a whole number 1\.\.255/],
    ['priority as text', { priority: '5' }, 'priority', /expected a whole number/],
    ['weight 1001', { weight: 1001 }, 'weight', /1001 is out of range; weight, the share of new flows must be 0\.\.1000/],
    ['lease -1', { lease: -1 }, 'lease', /-1 is out of range; lease seconds, 0 = never expires must be 0\.\.86400/],
    ['unknown field', { colour: 'red' }, 'colour', /unknown field "colour"; allowed: name, ip, mac, serves, priority, weight, lease/],
    ['duplicate serves', { serves: ['10.0.0.200:80', '10.0.0.200:80'] }, 'serves[1]', /10\.0\.0\.200:80 is listed twice/],
    ['empty serves list', { serves: [] }, 'serves', /expected "VIP", "VIP:PORT" or a non-empty list of them, got a list/],
    ['serves not a string', { serves: [80] }, 'serves[0]', /expected a string like "10\.0\.0\.10:80"/],
    ['serves a number', { serves: 80 }, 'serves', /non-empty list of them, got 80/],
    ['serves not an address', { serves: 'web:80' }, 'serves', /"web:80" is not VIP or VIP:PORT/],
    ['serves a broadcast address', { serves: '255.255.255.255:80' }, 'serves', /a VIP must be a unicast address/],
    ['bad name', { name: 'a 1' }, 'name', /"a 1" is not a valid backend name; use 1-64 characters/],
    ['name too long', { name: 'x'.repeat(65) }, 'name', /not a valid backend name/],
    ['missing name', { name: undefined }, 'name', /name: missing; give the backend a name/],
    ['missing ip', { ip: undefined }, 'ip', /ip: missing; give the backend's own IPv4 address/],
    ['missing serves', { serves: undefined }, 'serves', /serves: missing; say what it serves/],
  ];
  for (const [what, over, field, msg] of cases) {
    // A new name, so only the bad field can be the reason.
    const body = reg({ name: 'b1', ip: '10.0.2.9', mac: '02:00:00:00:02:09', ...over });
    await rejected(t, h, what, 'POST', P, JSON.stringify(body), { status: 400, code: 'EAPI_INVALID', msg, field });
  }
  // The body itself.
  await rejected(t, h, 'malformed JSON', 'POST', P, '{"name": "b1", "ip": ', { status: 400, code: 'EAPI_BAD_JSON', msg: /not valid JSON: expected a value, found the end of the body at position 21 \(line 1, column 22\)/ });
  await rejected(t, h, 'trailing comma', 'POST', P, '{"name": "b1",}', { status: 400, code: 'EAPI_BAD_JSON', msg: /expected a double-quoted property name/ });
  await rejected(t, h, 'an array', 'POST', P, '[{"name":"b1"}]', { status: 400, code: 'EAPI_BAD_JSON', msg: /is an array; send a JSON object/ });
  await rejected(t, h, 'null', 'POST', P, 'null', { status: 400, code: 'EAPI_BAD_JSON', msg: /send a JSON object/ });
  await rejected(t, h, 'empty body', 'POST', P, '', { status: 400, code: 'EAPI_BAD_JSON', msg: /the request body is empty; send a JSON object/ });
  await rejected(t, h, 'not UTF-8', 'POST', P, Buffer.from([0x7b, 0xff, 0x7d]), { status: 400, code: 'EAPI_BAD_JSON', msg: /not valid UTF-8/ });
  const big = JSON.stringify({ ...reg({ name: 'b1', ip: '10.0.2.9' }), pad: 'x'.repeat(API_MAX_BODY) });
  await rejected(t, h, 'body too large', 'POST', P, big, { status: 413, code: 'EAPI_BODY_TOO_LARGE', msg: /larger than 65536 bytes/ });
  await rejected(t, h, 'wrong content type', 'POST', P, JSON.stringify(reg({ name: 'b1', ip: '10.0.2.9' })),
    { status: 415, code: 'EAPI_UNSUPPORTED_MEDIA_TYPE', msg: /content-type "text\/plain" is not supported; send a JSON object with content-type: application\/json/ },
    { 'content-type': 'text/plain' });
  await rejected(t, h, 'query on POST', 'POST', `${P}?force=true`, reg({ name: 'b1', ip: '10.0.2.9' }),
    { status: 400, code: 'EAPI_INVALID', msg: /unknown query parameter "force"/ });
  // A charset parameter is fine.
  const r = await h.req('POST', P, reg({ name: 'b1', ip: '10.0.2.9', mac: null }), { 'content-type': 'application/json; charset=utf-8' });
  t.equal(r.status, 201, 'application/json; charset=utf-8 is accepted');
});

t.test('register: MAC given, or learned by ARP', async (t) => {
  const h = await harness(t);
  const r = await ok(t, h, 'POST', '/v1/backends', reg({ mac: undefined }), 201);
  t.match(r.backend, { mac: null, macSource: null, state: 'up' }, 'no MAC given: not known yet');
  t.equal(h.syn('192.0.2.7:1000', '10.0.0.200', 80), 'backend_unresolved', 'not forwarded before its MAC is known');
  t.equal(h.arpFrom('10.0.2.1', '02:00:00:00:02:77'), 'arp_reply');
  t.match((await ok(t, h, 'GET', '/v1/backends/a1')).backend, { mac: '02:00:00:00:02:77', macSource: 'arp' });
  t.equal(h.syn('192.0.2.7:1001', '10.0.0.200', 80), 'a1');
  t.equal(h.seg('192.0.2.7:1001', '10.0.0.200', 80).dstMac, '02:00:00:00:02:77', 'forwarded to the learned MAC');
  const r2 = await ok(t, h, 'POST', '/v1/backends', reg({ name: 'a2', ip: '10.0.2.2', mac: '02:00:00:00:02:02', serves: '10.0.0.201' }), 201);
  t.match(r2.backend, { mac: '02:00:00:00:02:02', macSource: 'given', serves: [{ service: '10.0.0.201' }] });
  t.equal(h.syn('192.0.2.7', '10.0.0.201', 5432), 'a2', 'IP mode: every port');
});

t.test('priority and weight: the top priority shares by weight, lower is standby until the actives drain', async (t) => {
  const h = await harness(t);
  const S = '10.0.0.210:80';
  await ok(t, h, 'POST', '/v1/backends', { name: 'p1', ip: '10.0.3.1', mac: macFor(0x301), serves: S, weight: 300 }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 'p2', ip: '10.0.3.2', mac: macFor(0x302), serves: S, weight: 100 }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 's1', ip: '10.0.3.3', mac: macFor(0x303), serves: S, priority: 50 }, 201);
  const view = svc(await servicesOf(h), S);
  t.same(view.members.map((m: any) => [m.backend, m.priority, m.weight, m.role]), [['p1', 100, 300, 'active'], ['p2', 100, 100, 'active'], ['s1', 50, 100, 'standby']]);
  t.same(view.serving.sort(), ['p1', 'p2']);

  const N = 2000;
  const count: Record<string, number> = {};
  for (let i = 0; i < N; i++) {
    const b = h.syn(`192.0.2.${1 + (i % 200)}:${10000 + i}`, '10.0.0.210', 80);
    count[b] = (count[b] ?? 0) + 1;
  }
  t.same(Object.keys(count).sort(), ['p1', 'p2'], `only the active group takes new flows: ${JSON.stringify(count)}`);
  const share = count['p1']! / N;
  t.ok(Math.abs(share - 0.75) < 0.04, `p1:p2 follows the weights 300:100 (p1 share ${share.toFixed(3)}, want 0.75 +- 0.04)`);
  t.match((await ok(t, h, 'GET', '/v1/backends/p1')).backend, { flows: count['p1'], connections: count['p1'] });

  // Drain both actives: the standby takes new flows; old flows keep going to their backend.
  t.match((await ok(t, h, 'PATCH', '/v1/backends/p1', { state: 'drain' })).backend, { state: 'drain', serves: [{ service: S, role: 'standby' }] });
  t.same(svc(await servicesOf(h), S).serving.sort(), ['p2'], 'p2 alone while p1 drains');
  await ok(t, h, 'PATCH', '/v1/backends/p2', { state: 'drain' });
  t.same(svc(await servicesOf(h), S).serving, ['s1'], 'the standby serves once the actives are drained');
  for (let i = 0; i < 50; i++) t.equal(h.syn(`198.51.100.${1 + i}:20000`, '10.0.0.210', 80), 's1', `new flow ${i} -> s1`);
  for (let i = 0; i < 4; i++) {
    const client = `192.0.2.${1 + (i % 200)}:${10000 + i}`;
    const r = h.seg(client, '10.0.0.210', 80);
    t.equal(r.verdict, 'tx', `existing flow ${client} still forwarded after drain`);
    t.equal(r.dstMac, r.backend === 'p1' ? macFor(0x301) : macFor(0x302), `to its own backend ${r.backend}`);
  }
  t.match((await ok(t, h, 'GET', '/v1/status')).backends, { total: 5, up: 3, drain: 2, down: 0 });
  // Back up: the actives take over again.
  await ok(t, h, 'PATCH', '/v1/backends/p1', { state: 'up' });
  t.same(svc(await servicesOf(h), S).serving, ['p1']);
  t.equal(h.syn('203.0.113.9:1', '10.0.0.210', 80), 'p1');
});

t.test('unregister: drain, keep old flows, then removed with its VIP; force; errors', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'u1', ip: '10.0.4.1', mac: macFor(0x401), serves: ['10.0.0.220:80', '10.0.0.222'] }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 'u2', ip: '10.0.4.2', mac: macFor(0x402), serves: '10.0.0.220:80', weight: 0 }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 'u3', ip: '10.0.4.3', mac: macFor(0x403), serves: '10.0.0.223:80' }, 201);
  // weight 0: u2 only takes flows when no other is usable, so these go to u1.
  for (let i = 0; i < 3; i++) t.equal(h.syn(`192.0.2.1:${1000 + i}`, '10.0.0.220', 80), 'u1');
  t.equal(h.syn('192.0.2.1:2000', '10.0.0.222', 22), 'u1');
  h.seg('192.0.2.1:1000', '10.0.0.220', 80); // established
  const g = await generation(h);

  const r = await h.req('DELETE', '/v1/backends/u1');
  t.equal(r.status, 202);
  t.match(r.json.backend, { name: 'u1', leaving: true, state: 'drain', flows: 4, serves: [] });
  t.equal(await generation(h), g + 1);
  t.match(JSON.parse(h.stateText()).registrations.find((x: any) => x.name === 'u1'), { leaving: true }, 'persisted as leaving');
  t.same(svc(await servicesOf(h), '10.0.0.220:80').members.map((m: any) => m.backend), ['u2'], 'no longer a member');
  t.equal(h.syn('192.0.2.1:3000', '10.0.0.220', 80), 'u2', 'new SYNs go elsewhere');
  t.equal(h.syn('192.0.2.1:3001', '10.0.0.222', 80), 'no_service', 'its own VIP takes no new flows');
  t.same((await vipsOf(h)).find((v) => v.vip === '10.0.0.222'), { vip: '10.0.0.222', source: 'api', services: [], arp: true }, 'its VIP stays while it drains');
  for (const c of ['192.0.2.1:1000', '192.0.2.1:1001', '192.0.2.1:1002']) {
    t.same(h.seg(c, '10.0.0.220', 80), { verdict: 'tx', backend: 'u1', dstMac: macFor(0x401) }, `existing flow ${c} still forwarded to u1`);
  }
  t.equal(h.seg('192.0.2.1:2000', '10.0.0.222', 22).verdict, 'tx');
  // Again: idempotent, nothing written.
  const before = h.snapshot();
  const again = await h.req('DELETE', '/v1/backends/u1');
  t.equal(again.status, 202);
  t.equal(h.snapshot(), before, 'unregistering a leaving backend again changes nothing');
  await rejected(t, h, 'PATCH a leaving backend', 'PATCH', '/v1/backends/u1', { state: 'up' },
    { status: 409, code: 'EAPI_CONFLICT', msg: /u1 is leaving.*register it again/ });

  // The flows end: swept, then the tick removes it, and the VIP only it served.
  h.advance(TIMEOUTS.established - 1000);
  h.sweepAndTick();
  t.equal((await h.req('GET', '/v1/backends/u1')).status, 200, 'still there while a flow is live');
  h.advance(2000);
  h.sweepAndTick();
  t.equal((await h.req('GET', '/v1/backends/u1')).status, 404, 'gone once its flows expired');
  t.equal(await generation(h), g + 2, 'the removal is one applied change');
  const vips = (await vipsOf(h)).map((v) => v.vip);
  t.notOk(vips.includes('10.0.0.222'), 'its API-added VIP is gone');
  t.ok(vips.includes('10.0.0.220'), 'a VIP another registration serves stays');
  t.equal(h.syn('192.0.2.1:4000', '10.0.0.222', 80), 'not_for_us', 'the old VIP is no longer ours');
  t.notOk(JSON.parse(h.stateText()).registrations.some((x: any) => x.name === 'u1'));

  // No flows: removed at once.
  const r3 = await h.req('DELETE', '/v1/backends/u3?force=false');
  t.equal(r3.status, 202);
  t.match(r3.json.backend, { name: 'u3', leaving: true });
  t.equal((await h.req('GET', '/v1/backends/u3')).status, 404, 'removed at once');
  t.notOk((await vipsOf(h)).some((v) => v.vip === '10.0.0.223'));

  // force=true cuts the flows (u5 keeps the VIP alive, so the drop is the backend's).
  t.equal(h.syn('192.0.2.1:5000', '10.0.0.220', 80), 'u2');
  await ok(t, h, 'POST', '/v1/backends', { name: 'u5', ip: '10.0.4.5', mac: macFor(0x405), serves: '10.0.0.220:80' }, 201);
  const r4 = await h.req('DELETE', '/v1/backends/u2?force=true');
  t.equal(r4.status, 202);
  t.equal((await h.req('GET', '/v1/backends/u2')).status, 404, 'forced: removed although it had flows');
  t.equal(h.seg('192.0.2.1:5000', '10.0.0.220', 80).verdict, 'no_backend', 'its flows are cut');
  t.equal(h.syn('192.0.2.1:5001', '10.0.0.220', 80), 'u5');
  await ok(t, h, 'DELETE', '/v1/backends/u5?force=true', undefined, 202);
  t.equal(h.seg('192.0.2.1:5001', '10.0.0.220', 80).verdict, 'not_for_us', 'the VIP went with the last backend serving it');

  await rejected(t, h, 'unknown', 'DELETE', '/v1/backends/nope', undefined, { status: 404, code: 'EAPI_UNKNOWN_BACKEND', msg: /no backend named nope/ });
  await rejected(t, h, 'config backend', 'DELETE', '/v1/backends/web1', undefined,
    { status: 409, code: 'EAPI_CONFIG_OWNED', msg: /web1 is defined in the config file.*vipgate set web1 --state drain, or remove it from the file and reload/ });
  await rejected(t, h, 'config backend, forced', 'DELETE', '/v1/backends/web1?force=true', undefined, { status: 409, code: 'EAPI_CONFIG_OWNED', msg: /config file/ });
  await rejected(t, h, 'force=maybe', 'DELETE', '/v1/backends/web1?force=maybe', undefined,
    { status: 400, code: 'EAPI_INVALID', msg: /force is "maybe"; write force=true .* or force=false/, field: 'force' });
  await rejected(t, h, 'force twice', 'DELETE', '/v1/backends/web1?force=true&force=true', undefined, { status: 400, code: 'EAPI_INVALID', msg: /given more than once/, field: 'force' });
  await rejected(t, h, 'bad name', 'DELETE', '/v1/backends/a%20b', undefined, { status: 400, code: 'EAPI_INVALID', msg: /not a valid backend name/, field: 'name' });
});

t.test('switch: a standby becomes the one serving member; unpin; errors', async (t) => {
  const h = await harness(t);
  const P = '/v1/services/10.0.0.101:80/switch';
  t.equal(h.syn('192.0.2.5:1', '10.0.0.101', 80), 'web1');
  const g = await generation(h);
  const r = await ok(t, h, 'POST', P, { backend: 'web2' });
  t.match(r.service, { service: '10.0.0.101:80', pinned: 'web2', serving: ['web2'] });
  t.same(r.service.members.map((m: any) => [m.backend, m.role]), [['web2', 'active'], ['web1', 'standby']]);
  t.equal(await generation(h), g + 1);
  t.equal(svc(await servicesOf(h), '10.0.0.101:80').pinned, 'web2', 'GET /v1/services shows the pin');
  t.same((await ok(t, h, 'GET', '/v1/backends/web2')).backend.serves, [{ service: '10.0.0.101:80', priority: 254, role: 'active', pinned: 'web2' }], 'the backend view shows the pin too');
  t.same(JSON.parse(h.stateText()).pins, { '10.0.0.101:80': 'web2' }, 'persisted');
  for (let i = 0; i < 20; i++) t.equal(h.syn(`192.0.2.6:${100 + i}`, '10.0.0.101', 80), 'web2', 'new SYNs go to web2');
  t.same(h.seg('192.0.2.5:1', '10.0.0.101', 80), { verdict: 'tx', backend: 'web1', dstMac: WEB1_MAC }, 'the old flow stays on web1');
  t.equal(h.syn('192.0.2.6:1', '10.0.0.100', 80), 'web1', 'other services are not affected');

  const u = await ok(t, h, 'POST', P, { backend: null });
  t.match(u.service, { pinned: null, serving: ['web1'] });
  t.equal(h.syn('192.0.2.7:1', '10.0.0.101', 80), 'web1', 'back to priority order');
  t.same(JSON.parse(h.stateText()).pins, {});

  await ok(t, h, 'POST', '/v1/backends', reg(), 201);
  await rejected(t, h, 'unknown service', 'POST', '/v1/services/10.0.0.101:81/switch', { backend: 'web2' },
    { status: 404, code: 'EAPI_UNKNOWN_SERVICE', msg: /no service 10\.0\.0\.101:81; the services are: 10\.0\.0\.100, 10\.0\.0\.101:80, 10\.0\.0\.200:80/ });
  await rejected(t, h, 'malformed service key', 'POST', '/v1/services/web/switch', { backend: 'web2' },
    { status: 400, code: 'EAPI_INVALID', msg: /"web" is not VIP or VIP:PORT/, field: 'service' });
  await rejected(t, h, 'service port out of range', 'POST', '/v1/services/10.0.0.101:99999/switch', { backend: 'web2' },
    { status: 400, code: 'EAPI_INVALID', msg: /port 99999 is out of range/, field: 'service' });
  await rejected(t, h, 'not a member', 'POST', P, { backend: 'a1' },
    { status: 409, code: 'EAPI_CONFLICT', msg: /a1 is not a member of 10\.0\.0\.101:80; its members are web1, web2/, field: 'backend' });
  await rejected(t, h, 'unknown backend', 'POST', P, { backend: 'web9' }, { status: 404, code: 'EAPI_UNKNOWN_BACKEND', msg: /no backend named web9/ });
  await rejected(t, h, 'missing backend', 'POST', P, {}, { status: 400, code: 'EAPI_INVALID', msg: /backend: missing; name the member to make active, or null/, field: 'backend' });
  await rejected(t, h, 'backend not a name', 'POST', P, { backend: 7 }, { status: 400, code: 'EAPI_INVALID', msg: /7 is not a valid backend name/, field: 'backend' });
  await rejected(t, h, 'unknown field', 'POST', P, { backend: 'web2', now: true }, { status: 400, code: 'EAPI_INVALID', msg: /unknown field "now"; allowed: backend/, field: 'now' });
  await rejected(t, h, 'GET on switch', 'GET', P, undefined, { status: 405, code: 'EAPI_METHOD_NOT_ALLOWED', msg: /use POST/ });
  await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'drain' });
  await rejected(t, h, 'member in drain', 'POST', P, { backend: 'web2' },
    { status: 409, code: 'EAPI_CONFLICT', msg: /web2 is drain; set it up first \(vipgate set web2 --state up\), then switch/, field: 'backend' });
});

t.test('PATCH: state and weight; errors', async (t) => {
  const h = await harness(t);
  const P = '/v1/backends/web1';
  t.match((await ok(t, h, 'PATCH', P, { state: 'down' })).backend, { name: 'web1', state: 'down', source: 'config' });
  t.equal(h.syn('192.0.2.1:1', '10.0.0.101', 80), 'web2', 'web1 down: the standby takes new flows');
  t.equal(h.syn('192.0.2.1:2', '10.0.0.100', 80), 'no_backend', 'the IP-mode service has no other member');
  t.match((await ok(t, h, 'GET', '/v1/status')).backends, { up: 1, down: 1 });
  t.match((await ok(t, h, 'PATCH', P, { state: 'drain' })).backend, { state: 'drain' });
  t.match((await ok(t, h, 'PATCH', P, { state: 'up' })).backend, { state: 'up' });
  t.equal(h.syn('192.0.2.1:3', '10.0.0.101', 80), 'web1');
  const w = await ok(t, h, 'PATCH', P, { weight: 50 });
  t.match(w.backend, { state: 'up', weight: 50 });
  t.equal(svc(await servicesOf(h), '10.0.0.101:80').members[0].weight, 50, 'the service view shows the weight');
  t.same(JSON.parse(h.stateText()).overrides, { web1: { state: 'up', weight: 50 } }, 'overrides persisted');
  t.match((await ok(t, h, 'PATCH', P, { state: 'drain', weight: 0 })).backend, { state: 'drain', weight: 0 });

  await rejected(t, h, 'invalid state', 'PATCH', P, { state: 'sleeping' }, { status: 400, code: 'EAPI_INVALID', msg: /"sleeping" is not a state; use up, drain .*, down, active .* or standby/, field: 'state' });
  await rejected(t, h, 'empty body', 'PATCH', P, {}, { status: 400, code: 'EAPI_INVALID', msg: /nothing to change; give state \(up, drain, down\) and\/or weight/ });
  await rejected(t, h, 'weight out of range', 'PATCH', P, { weight: -1 }, { status: 400, code: 'EAPI_INVALID', msg: /-1 is out of range.*0\.\.1000/, field: 'weight' });
  await rejected(t, h, 'weight as text', 'PATCH', P, { weight: '5' }, { status: 400, code: 'EAPI_INVALID', msg: /expected a whole number 0\.\.1000/, field: 'weight' });
  await rejected(t, h, 'unknown field', 'PATCH', P, { name: 'x' }, { status: 400, code: 'EAPI_INVALID', msg: /unknown field "name"; allowed: state, weight/, field: 'name' });
  await rejected(t, h, 'not an object', 'PATCH', P, '"drain"', { status: 400, code: 'EAPI_BAD_JSON', msg: /is a string; send a JSON object/ });
  await rejected(t, h, 'unknown backend', 'PATCH', '/v1/backends/web9', { state: 'up' }, { status: 404, code: 'EAPI_UNKNOWN_BACKEND', msg: /no backend named web9; the backends are: web1, web2/ });
});

t.test('PATCH state active/standby: a backend takes over its services, or hands them on', async (t) => {
  const h = await harness(t);
  const S = '10.0.0.101:80';
  t.equal(h.syn('192.0.2.1:1', '10.0.0.101', 80), 'web1', 'web1 is the configured active');
  await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'down' });
  const a = await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'active' });
  t.match(a.backend, { name: 'web2', state: 'up', serves: [{ service: S, role: 'active', pinned: 'web2' }] }, 'active: up again, and active where it serves, pinned');
  t.equal(svc(await servicesOf(h), S).pinned, 'web2', 'pinned, as a switch does');
  t.equal(h.syn('192.0.2.1:2', '10.0.0.101', 80), 'web2', 'new flows go to web2');
  t.same(h.seg('192.0.2.1:1', '10.0.0.101', 80).backend, 'web1', 'the flow opened before stays on web1');
  const b = await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'standby' });
  t.match(b.backend, { state: 'up', serves: [{ service: S, role: 'standby', pinned: 'web1' }] }, 'standby: still up, no longer active; the pin to web1 shows');
  t.equal(svc(await servicesOf(h), S).pinned, 'web1', 'the next up member took over');
  t.equal(h.syn('192.0.2.1:3', '10.0.0.101', 80), 'web1');
  await rejected(t, h, 'standby with nobody to take over', 'PATCH', '/v1/backends/web1', { state: 'standby' },
    { status: 409, code: 'EAPI_CONFLICT', msg: /no other member of 10\.0\.0\.100 is up to take over from web1/, field: 'state' });
  t.same(JSON.parse(h.stateText()).overrides, { web2: { state: 'up' } }, 'roles are kept as pins, never as a stored state');
});

t.test('leases: expiry drains the registration; a renewal keeps it up', async (t) => {
  const h = await harness(t);
  const L1 = { name: 'l1', ip: '10.0.5.1', mac: macFor(0x501), serves: '10.0.0.230:80', lease: 2 };
  const r = await ok(t, h, 'POST', '/v1/backends', L1, 201);
  t.same(r.backend.lease, { seconds: 2, expiresIn: 2 });
  t.equal(h.syn('192.0.2.1:1', '10.0.0.230', 80), 'l1');
  h.advance(1000);
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/l1')).backend, { state: 'up', leaving: false, lease: { seconds: 2, expiresIn: 1 } });
  const g = await generation(h);
  h.advance(2000);
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/l1')).backend, { state: 'drain', leaving: true, flows: 1 }, 'expired: draining its flow');
  t.equal(await generation(h), g + 1);
  t.ok(h.logs.some((l) => l.level === 'warn' && /l1: lease of 2s expired without renewal/.test(l.msg)), 'logged');
  t.equal(h.syn('192.0.2.1:2', '10.0.0.230', 80), 'no_service', 'no new flows');
  t.equal(h.seg('192.0.2.1:1', '10.0.0.230', 80).verdict, 'tx', 'the old flow is still forwarded');
  // Coming back while draining: replaces the leaving registration.
  const back = await h.req('POST', '/v1/backends', L1);
  t.equal(back.status, 200);
  t.match(back.json.backend, { state: 'up', leaving: false, lease: { seconds: 2, expiresIn: 2 } });
  t.equal(await generation(h), g + 2);

  const L2 = { name: 'l2', ip: '10.0.5.2', mac: macFor(0x502), serves: '10.0.0.231:80', lease: 2 };
  await ok(t, h, 'POST', '/v1/backends', L2, 201);
  h.advance(1500);
  const renew = await h.req('POST', '/v1/backends', L2);
  t.equal(renew.status, 200);
  t.same(renew.json.backend.lease, { seconds: 2, expiresIn: 2 }, 'the renewal restarts the lease');
  h.advance(1500); // 3 s after registering, 1.5 s after the renewal
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/l2')).backend, { state: 'up', leaving: false }, 'renewed in time: still up');
  h.advance(1000);
  h.sweepAndTick();
  t.equal((await h.req('GET', '/v1/backends/l2')).status, 404, 'expired without flows: removed at once');
  t.notOk((await vipsOf(h)).some((v) => v.vip === '10.0.0.231'));
  // A lease of 0 never expires.
  await ok(t, h, 'POST', '/v1/backends', { ...L2, name: 'l3', lease: 0 }, 201);
  t.equal((await ok(t, h, 'GET', '/v1/backends/l3')).backend.lease, null);
  h.advance(86_400_000);
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/l3')).backend, { state: 'up', leaving: false });
});

t.test('flows: filters, paging, errors', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'f1', ip: '10.0.6.1', mac: macFor(0x601), serves: '10.0.0.240:80' }, 201);
  const made: string[] = [];
  const mk = (client: string, vip: string, port: number, want: string) => {
    t.equal(h.syn(client, vip, port), want);
    made.push(`${client}>${vip}:${port}`);
  };
  for (let i = 0; i < 100; i++) mk(`192.0.2.${1 + (i % 10)}:${20000 + i}`, '10.0.0.100', 80, 'web1');
  for (let i = 0; i < 60; i++) mk(`192.0.2.${11 + (i % 10)}:${30000 + i}`, '10.0.0.101', 80, 'web1');
  for (let i = 0; i < 50; i++) mk(`192.0.2.${1 + (i % 10)}:${40000 + i}`, '10.0.0.100', 22, 'web1');
  for (let i = 0; i < 40; i++) mk(`198.51.100.1:${50000 + i}`, '10.0.0.240', 80, 'f1');
  for (let i = 0; i < 30; i++) h.seg(`192.0.2.${1 + (i % 10)}:${20000 + i}`, '10.0.0.100', 80); // established
  for (let i = 0; i < 10; i++) h.seg(`198.51.100.1:${50000 + i}`, '10.0.0.240', 80, true);   // closing
  const total = made.length;

  const first = await ok(t, h, 'GET', '/v1/flows');
  t.equal(first.flows.length, 100, 'default limit 100');
  t.type(first.next, 'string');
  t.match(first.flows.find((f: any) => f.backend === 'f1'), { backend: 'f1', backendIp: '10.0.6.1', vip: '10.0.0.240:80', state: /syn|closing/, ageSeconds: 0, idleSeconds: 0 });

  const all = await allFlows(t, h, 'limit=37');
  t.equal(all.length, total, 'paging reaches every flow');
  t.equal(new Set(all.map(flowKey)).size, all.length, 'no duplicates across pages');
  t.same(new Set(all.map(flowKey)), new Set(made), 'the union is exactly the flows created');
  const one = all.find((f) => f.client === '192.0.2.1:20000')!;
  t.same(one, { client: '192.0.2.1:20000', vip: '10.0.0.100:80', backend: 'web1', backendIp: '10.0.1.21', state: 'established', ageSeconds: 0, idleSeconds: 0, packetsIn: 2, packetsOut: 0 });

  const by = async (q: string, n: number, pred: (f: any) => boolean) => {
    const fl = await allFlows(t, h, q);
    t.equal(fl.length, n, `${q}: ${n} flows`);
    t.ok(fl.every(pred), `${q}: every flow matches`);
  };
  await by('vip=10.0.0.101&limit=7', 60, (f) => f.vip === '10.0.0.101:80');
  await by('port=22', 50, (f) => f.vip === '10.0.0.100:22');
  await by('vip=10.0.0.100&port=80', 100, (f) => f.vip === '10.0.0.100:80');
  await by('backend=f1', 40, (f) => f.backend === 'f1' && f.backendIp === '10.0.6.1');
  await by('backend=web2', 0, () => true);
  await by('client=192.0.2.3', 10 + 5, (f) => f.client.startsWith('192.0.2.3:'));
  await by('state=established', 30, (f) => f.state === 'established');
  await by('state=closing&backend=f1', 10, (f) => f.state === 'closing');
  await by('state=syn', total - 40, (f) => f.state === 'syn');
  const lim = await ok(t, h, 'GET', '/v1/flows?limit=1000');
  t.equal(lim.flows.length, total);

  // Idle past their timeout: not listed, even before a sweep.
  h.advance(TIMEOUTS.halfOpen + 1000);
  const later = await allFlows(t, h, 'limit=1000');
  t.equal(later.length, 30, 'only the established flows are still live');
  t.ok(later.every((f) => f.state === 'established' && f.ageSeconds === 11 && f.idleSeconds === 11));

  const P = '/v1/flows';
  const bad: Array<[string, string, RegExp, number?, string?]> = [
    ['vip=nope', 'vip', /"nope" is not an IPv4 address/],
    ['client=1.2.3', 'client', /"1\.2\.3" is not an IPv4 address/],
    ['port=x', 'port', /port is "x"; it must be an integer 0\.\.65535/],
    ['port=70000', 'port', /must be an integer 0\.\.65535/],
    ['limit=0', 'limit', /limit is "0"; it must be an integer 1\.\.1000/],
    ['limit=1001', 'limit', /1\.\.1000/],
    ['limit=-5', 'limit', /1\.\.1000/],
    ['state=open', 'state', /state is "open"; it must be one of syn, established, closing/],
    ['cursor=abc', 'cursor', /not a cursor from a previous page; start without one/],
    ['cursor=999999999', 'cursor', /not a cursor from a previous page/],
    ['backend=', 'backend', /backend is empty; leave the parameter out/],
    ['vip=10.0.0.100&vip=10.0.0.101', 'vip', /given more than once/],
    ['colour=red', 'colour', /unknown query parameter "colour"; this request accepts vip, port, backend, client, state, limit, cursor/],
  ];
  for (const [q, field, msg] of bad) {
    await rejected(t, h, `flows ${q}`, 'GET', `${P}?${q}`, undefined, { status: 400, code: 'EAPI_INVALID', msg, field });
  }
  await rejected(t, h, 'flows of an unknown backend', 'GET', `${P}?backend=nope`, undefined, { status: 404, code: 'EAPI_UNKNOWN_BACKEND', msg: /no backend named nope/ });
});

t.test('reload: additions, broken files, restart-only keys, drained removals, conflicts with registrations', async (t) => {
  const h = await harness(t);
  const WEB3 = '{ name: web3, ip: 10.0.1.23, mac: "02:00:00:00:01:23" }';
  const base = { backends: [`{ name: web1, ip: 10.0.1.21, mac: "${WEB1_MAC}" }`, `{ name: web2, ip: 10.0.1.22, mac: "${WEB2_MAC}" }`] };
  const withWeb3 = defaultYaml({
    vips: ['10.0.0.100', '10.0.0.101', '10.0.0.102'],
    backends: [...base.backends, WEB3],
    services: ['{ vip: 10.0.0.100, backend: web1 }', '{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }', '{ vip: 10.0.0.102, port: 80, active: web3 }'],
  });
  h.writeConfig(withWeb3);
  const r = await ok(t, h, 'POST', '/v1/reload');
  t.equal(r.generation, 1);
  t.same(r.changes, ['+ vip 10.0.0.102', '+ backend web3 10.0.1.23', '+ service 10.0.0.102:80']);
  t.equal(await generation(h), 1);
  t.equal(h.syn('192.0.2.1:1', '10.0.0.102', 80), 'web3', 'the new service works');
  t.same((await vipsOf(h)).find((v) => v.vip === '10.0.0.102'), { vip: '10.0.0.102', source: 'config', services: ['10.0.0.102:80'], arp: true });
  const same = await ok(t, h, 'POST', '/v1/reload');
  t.same(same, { generation: 1, changes: [] }, 'reloading an unchanged file: no changes listed, the generation stays');
  t.equal(await generation(h), 1, 'and the state file\'s generation too');
  h.writeConfig(withWeb3 + '# only a comment is new\n');
  t.same(await ok(t, h, 'POST', '/v1/reload'), { generation: 1, changes: [] }, 'a file that differs only in comments: no change either');

  // Broken files: 422, every issue listed, nothing changed.
  h.writeConfig('mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100\n');
  const syn = await rejected(t, h, 'YAML syntax', 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_SYNTAX', msg: new RegExp(`${h.configFile.replace(/[.]/g, '\\.')}:\\d+:\\d+`) });
  t.ok(Array.isArray(syn.json.error.issues) && syn.json.error.issues.length >= 1, 'issues listed');
  h.writeConfig(withWeb3.replace('active: web3', 'active: web9').replace('backend: web1 }', 'backend: web8 }'));
  const inv = await rejected(t, h, 'unknown backends', 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_INVALID', msg: /web9/ });
  t.equal(inv.json.error.issues.length, 2, 'one issue per problem');
  t.match(inv.json.error.issues, [/vipgate\.yaml:\d+:\d+: services\[0\].*web8/, /vipgate\.yaml:\d+:\d+: services\[2\].*web9/]);
  fs.renameSync(h.configFile, `${h.configFile}.moved`);
  await rejected(t, h, 'file gone', 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_IO', msg: /cannot read config file: no such file/ });
  fs.renameSync(`${h.configFile}.moved`, h.configFile);
  h.writeConfig(withWeb3.replace('mode: dsr', 'mode: nat\nnat_gateway: 10.0.1.1'));
  await rejected(t, h, 'mode changed', 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_INVALID', msg: /mode changed; that takes a restart.*Nothing was changed: revert it, or restart vipgate/ });
  h.writeConfig(withWeb3.replace('capacity: 16384', 'capacity: 4096').replace(`mac: "${OUR_MAC}"`, 'mac: "02:00:5e:00:00:02"'));
  await rejected(t, h, 'mac and flows changed', 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_INVALID', msg: /mac, flows changed; those take a restart/ });

  // Conflicts with registrations: 422, nothing changed.
  h.writeConfig(withWeb3);
  await ok(t, h, 'POST', '/v1/backends', { name: 'r1', ip: '10.0.2.50', mac: macFor(0x250), serves: '10.0.0.250:80' }, 201);
  const conflicting: Array<[string, string, RegExp]> = [
    ['a config backend with a registered name', withWeb3.replace(WEB3, `${WEB3}\n  - { name: r1, ip: 10.0.1.30 }`), /conflicts with the state changed through the API: backend r1 is defined in the config file/],
    ['a config backend with a registered IP', withWeb3.replace(WEB3, `${WEB3}\n  - { name: web4, ip: 10.0.2.50 }`), /conflicts with the state changed through the API: 10\.0\.2\.50 is already the address of backend web4/],
    ['a config VIP at a registered backend\'s IP', withWeb3.replace('"10.0.0.102"]', '"10.0.0.102", "10.0.2.50"]'), /conflicts with the state changed through the API: 10\.0\.2\.50 is a VIP \(config\)/],
  ];
  for (const [what, text, msg] of conflicting) {
    h.writeConfig(text);
    const c = await rejected(t, h, what, 'POST', '/v1/reload', undefined, { status: 422, code: 'ECONFIG_INVALID', msg });
    t.match(c.json.error.message, /nothing was changed/);
  }

  // A config backend with flows leaves by draining.
  t.equal(h.syn('192.0.2.9:9', '10.0.0.102', 80), 'web3');
  h.seg('192.0.2.9:9', '10.0.0.102', 80);
  h.writeConfig(defaultYaml());
  const g = await generation(h);
  const rm = await ok(t, h, 'POST', '/v1/reload');
  t.equal(rm.generation, g + 1);
  t.same(rm.changes.sort(), ['- backend web3 (draining its flows first)', '- service 10.0.0.102:80'].sort());
  t.match((await ok(t, h, 'GET', '/v1/backends/web3')).backend, { source: 'config', state: 'drain', leaving: true, flows: 2, serves: [] });
  t.same(h.seg('192.0.2.1:1', '10.0.0.102', 80), { verdict: 'tx', backend: 'web3', dstMac: '02:00:00:00:01:23' }, 'its flows are still forwarded');
  t.equal(h.syn('192.0.2.1:77', '10.0.0.102', 80), 'no_service', 'no new flows');
  // While it drains, its name and address are not free: its flows would follow a newcomer.
  await rejected(t, h, 'registering a draining config backend\'s name', 'POST', '/v1/backends', { name: 'web3', ip: '10.0.1.99', serves: '10.0.0.150:80' },
    { status: 409, code: 'EAPI_CONFLICT', field: 'name', msg: /web3 .* was removed from the config and is draining its flows; wait until it is gone/ });
  await rejected(t, h, 'registering a draining config backend\'s IP', 'POST', '/v1/backends', { name: 'newcomer', ip: '10.0.1.23', serves: '10.0.0.150:80' },
    { status: 409, code: 'EAPI_CONFLICT', field: 'ip', msg: /use another IP/ });
  h.advance(TIMEOUTS.established + 1000);
  h.sweepAndTick();
  t.equal((await h.req('GET', '/v1/backends/web3')).status, 404, 'removed once its flows ended');
  t.notOk((await vipsOf(h)).some((v) => v.vip === '10.0.0.102'), 'and the VIP it kept');
  t.equal(await generation(h), g + 2);

  // A config backend without flows is removed at once.
  h.writeConfig(defaultYaml({ backends: [base.backends[0]!], services: ['{ vip: 10.0.0.100, backend: web1 }', '{ vip: 10.0.0.101, port: 80, active: web1 }'] }));
  const rm2 = await ok(t, h, 'POST', '/v1/reload');
  t.ok(rm2.changes.includes('- backend web2'));
  t.equal((await h.req('GET', '/v1/backends/web2')).status, 404);
  await rejected(t, h, 'reload takes no body fields', 'POST', '/v1/reload?now=1', undefined, { status: 400, code: 'EAPI_INVALID', msg: /unknown query parameter "now"/ });
});

t.test('auth: a token is required when set', async (t) => {
  const h = await harness(t, { token: 's3cret-token' });
  const missing = await rejected(t, h, 'no token', 'GET', '/v1/status', undefined,
    { status: 401, code: 'EAPI_UNAUTHORIZED', msg: /this API needs a bearer token: send the header "Authorization: Bearer <token>"/ }, { authorization: null });
  t.equal(missing.headers['www-authenticate'], 'Bearer');
  await rejected(t, h, 'wrong token', 'POST', '/v1/backends', reg(), { status: 401, code: 'EAPI_UNAUTHORIZED', msg: /the bearer token is wrong/ }, { authorization: 'Bearer nope' });
  await rejected(t, h, 'not a bearer', 'DELETE', '/v1/backends/web1', undefined, { status: 401, code: 'EAPI_UNAUTHORIZED', msg: /needs a bearer token/ }, { authorization: 'Basic czNjcmV0LXRva2Vu' });
  await rejected(t, h, 'no token, reload', 'POST', '/v1/reload', undefined, { status: 401, code: 'EAPI_UNAUTHORIZED', msg: /bearer token/ }, { authorization: null });
  await rejected(t, h, 'no token, metrics', 'GET', '/metrics', undefined, { status: 401, code: 'EAPI_UNAUTHORIZED', msg: /bearer token/ }, { authorization: null });
  await ok(t, h, 'POST', '/v1/backends', reg(), 201);
  t.equal(await generation(h), 1, 'the right token works');
});

t.test('persistence: a new controller from the same config and state file restores everything', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'p1', ip: '10.0.7.1', mac: macFor(0x701), serves: ['10.0.0.250:80', '10.0.0.251'], weight: 300 }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 'p2', ip: '10.0.7.2', serves: '10.0.0.250:80', priority: 90, lease: 600 }, 201);
  await ok(t, h, 'POST', '/v1/backends', { name: 'p3', ip: '10.0.7.3', mac: macFor(0x703), serves: '10.0.0.252:80' }, 201);
  t.equal(h.syn('192.0.2.1:1', '10.0.0.252', 80), 'p3');
  await ok(t, h, 'DELETE', '/v1/backends/p3', undefined, 202); // leaving, one flow
  await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'drain' });
  await ok(t, h, 'PATCH', '/v1/backends/web1', { weight: 40 });
  await ok(t, h, 'PATCH', '/v1/backends/p1', { weight: 7, state: 'down' });
  await ok(t, h, 'POST', '/v1/services/10.0.0.250:80/switch', { backend: 'p2' });
  const g = await generation(h);
  t.equal(g, 8);

  const c2 = h.fresh();
  t.same(c2.restoreWarnings, []);
  t.equal(c2.generation, g, 'generation restored');
  t.same(c2.registrations(), h.controller.registrations(), 'registrations restored (the leaving one too)');
  const norm = (bs: any[]) => bs.map((b) => ({ ...b, flows: 0, connections: 0 }));
  t.same(norm(c2.backends()), norm(h.controller.backends()), 'backends: overrides (drain, weight, down) restored');
  t.same(c2.services(), h.controller.services(), 'services: the pin restored');
  t.same(c2.vips(), h.controller.vips());
  t.match(c2.backend('p2'), { lease: { seconds: 600, expiresIn: 600 } }, 'a lease restarts at restore');
  t.equal(c2.services().find((s) => s.service === '10.0.0.250:80')!.pinned, 'p2');
});

t.test('persistence: an invalid state file stops the start with a clear message', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"version": 1, ', /is not valid JSON.*edited or damaged by something else: fix it, or move it aside/],
    ['wrong version', JSON.stringify({ version: 9, generation: 1, registrations: [], overrides: {}, pins: {} }), /not a vipgate state: version 9 is not 1; fix it, or move it aside/],
    ['negative generation', JSON.stringify({ version: 1, generation: -1, registrations: [], overrides: {}, pins: {} }), /generation is not a whole number/],
    ['a bad registration', JSON.stringify({ version: 1, generation: 3, registrations: [{ name: 'x', ip: '10.0.2', serves: '10.0.0.200', priority: 100, weight: 100, lease: 0, leaving: false }], overrides: {}, pins: {} }), /registrations\[0\]: ip: "10\.0\.2" is not an IPv4 address/],
    ['leaving missing', JSON.stringify({ version: 1, generation: 3, registrations: [{ name: 'x', ip: '10.0.2.1', serves: '10.0.0.200' }], overrides: {}, pins: {} }), /registrations\[0\]: leaving is not true or false/],
    ['a bad override', JSON.stringify({ version: 1, generation: 3, registrations: [], overrides: { web1: { state: 'gone' } }, pins: {} }), /overrides\.web1: state: "gone" is not a state/],
    ['a bad pin', JSON.stringify({ version: 1, generation: 3, registrations: [], overrides: {}, pins: { 'x:1': 'web1' } }), /pins: "x:1" is not VIP or VIP:PORT/],
  ];
  for (const [what, text, msg] of cases) {
    const h = await harness(t);
    fs.writeFileSync(h.stateFile!, text);
    try {
      h.fresh();
      t.fail(`${what}: the constructor should throw`);
    } catch (e) {
      t.ok(e instanceof VipgateError, `${what}: a VipgateError`);
      t.equal((e as VipgateError).code, 'ESTATE_INVALID', `${what}: ESTATE_INVALID`);
      t.match((e as Error).message, msg, `${what}: says what is wrong`);
      t.match((e as Error).message, h.stateFile!, `${what}: names the file`);
    }
  }
});

t.test('persistence: registrations that conflict with the config are dropped with a warning', async (t) => {
  const r = (name: string, ip: string, serves: string) => ({ name, ip, mac: null, serves: [serves], priority: 100, weight: 100, lease: 0, leaving: false });
  const state = {
    version: 1, generation: 12,
    registrations: [r('web1', '10.0.2.1', '10.0.0.200:80'), r('ok1', '10.0.2.2', '10.0.0.200:80'), r('clash', '10.0.1.22', '10.0.0.201:80'), r('ok2', '10.0.2.3', '10.0.0.100:8080')],
    overrides: { ok1: { weight: 5 }, web2: { state: 'drain' }, gone: { state: 'down' } },
    pins: { '10.0.0.200:80': 'ok1', '10.0.0.201:80': 'clash' },
  };
  const h = await harness(t, { initialState: JSON.stringify(state) });
  const w = h.controller.restoreWarnings;
  t.equal(w.length, 2, 'two registrations dropped');
  t.match(w[0], /registration web1 from .*state\.json is dropped: backend web1 is defined in the config file/);
  t.match(w[1], /registration clash from .*state\.json is dropped: 10\.0\.1\.22 is already the address of backend web2/);
  t.same(h.controller.registrations().map((x) => x.name), ['ok1', 'ok2'], 'the rest restored');
  t.equal(h.controller.generation, 12);
  t.match((await ok(t, h, 'GET', '/v1/backends/ok1')).backend, { weight: 5, source: 'api' });
  t.match((await ok(t, h, 'GET', '/v1/backends/web2')).backend, { state: 'drain' });
  const services = await servicesOf(h);
  t.equal(svc(services, '10.0.0.200:80').pinned, 'ok1');
  t.notOk(svc(services, '10.0.0.201:80'), 'the dropped registration\'s service is gone');
  t.equal(svc(services, '10.0.0.100:8080').serving[0], 'ok2', 'a port-mode service on a config VIP');
});

t.test('state write failure: 503 and nothing changed', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'k1', ip: '10.0.8.1', mac: macFor(0x801), serves: '10.0.0.200:80', lease: 5 }, 201);
  t.equal(h.syn('192.0.2.1:1', '10.0.0.200', 80), 'k1');
  h.writeConfig(defaultYaml({ vips: ['10.0.0.100', '10.0.0.101', '10.0.0.102'] }));
  const stateDir = path.dirname(h.stateFile!);
  const saved = fs.readFileSync(h.stateFile!);
  // Replace the state file's directory by a regular file: root ignores permissions, not this.
  fs.rmSync(stateDir, { recursive: true });
  fs.writeFileSync(stateDir, 'not a directory');
  const want = { status: 503, code: 'EAPI_STATE_WRITE', msg: /could not save the change to .*state\.json .*nothing was changed: fix the disk or permissions and retry/ };
  await rejected(t, h, 'register', 'POST', '/v1/backends', reg({ name: 'k2', ip: '10.0.8.2' }), want);
  await rejected(t, h, 'set', 'PATCH', '/v1/backends/web1', { state: 'drain' }, want);
  await rejected(t, h, 'switch', 'POST', '/v1/services/10.0.0.101:80/switch', { backend: 'web2' }, want);
  await rejected(t, h, 'unregister', 'DELETE', '/v1/backends/k1', undefined, want);
  await rejected(t, h, 'reload', 'POST', '/v1/reload', undefined, want);
  t.equal(h.syn('192.0.2.1:2', '10.0.0.101', 80), 'web1', 'the packet path still uses the old tables');
  t.equal(h.syn('192.0.2.1:3', '10.0.0.102', 80), 'not_for_us', 'the reload was not applied');
  // A lease expiring while the disk fails: the tick cannot apply it, and retries.
  h.advance(6000);
  const before = h.snapshot();
  h.sweepAndTick();
  t.equal(h.snapshot(), before, 'the tick changed nothing');
  t.ok(h.logs.some((l) => l.level === 'error' && /could not apply periodic change \(lease expired\).*retrying every tick/.test(l.msg)));
  // Still failing: said once, not again every tick.
  const noisy = () => h.logs.filter((l) => /could not apply periodic change|lease of \d+s expired/.test(l.msg)).length;
  const said = noisy();
  h.advance(1000); h.sweepAndTick();
  h.advance(1000); h.sweepAndTick();
  t.equal(noisy(), said, 'two more failing ticks log nothing new');

  // The disk is back: the lease still expires (the failed unregister and tick lost nothing).
  fs.rmSync(stateDir);
  fs.mkdirSync(stateDir);
  fs.writeFileSync(h.stateFile!, saved);
  h.sweepAndTick();
  t.ok(h.logs.some((l) => l.level === 'info' && /periodic changes apply again/.test(l.msg)), 'and the recovery is logged');
  t.match((await ok(t, h, 'GET', '/v1/backends/k1')).backend, { leaving: true, state: 'drain' }, 'the lease expiry is applied on the next tick');
  await ok(t, h, 'POST', '/v1/backends', reg({ name: 'k2', ip: '10.0.8.2' }), 201);
  t.equal(await generation(h), 3);
});

t.test('state write failure: a failed unregister keeps the lease running', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'k1', ip: '10.0.8.1', mac: macFor(0x801), serves: '10.0.0.200:80', lease: 5 }, 201);
  t.equal(h.syn('192.0.2.1:1', '10.0.0.200', 80), 'k1');
  const stateDir = path.dirname(h.stateFile!);
  const saved = fs.readFileSync(h.stateFile!);
  fs.rmSync(stateDir, { recursive: true });
  fs.writeFileSync(stateDir, 'not a directory');
  t.equal((await h.req('DELETE', '/v1/backends/k1')).status, 503);
  fs.rmSync(stateDir);
  fs.mkdirSync(stateDir);
  fs.writeFileSync(h.stateFile!, saved);
  h.advance(6000);
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/k1')).backend, { leaving: true, state: 'drain' }, 'the lease still expires');
});

t.test('state write failure: a config backend drained away is still removed once the disk is back', async (t) => {
  const WEB3 = '{ name: web3, ip: 10.0.1.23, mac: "02:00:00:00:01:23" }';
  const h = await harness(t, { yaml: defaultYaml({ vips: ['10.0.0.100', '10.0.0.101', '10.0.0.102'], backends: [`{ name: web1, ip: 10.0.1.21, mac: "${WEB1_MAC}" }`, WEB3], services: ['{ vip: 10.0.0.100, backend: web1 }', '{ vip: 10.0.0.102, port: 80, active: web3 }'] }) });
  t.equal(h.syn('192.0.2.1:1', '10.0.0.102', 80), 'web3');
  h.writeConfig(defaultYaml({ backends: [`{ name: web1, ip: 10.0.1.21, mac: "${WEB1_MAC}" }`], services: ['{ vip: 10.0.0.100, backend: web1 }'] }));
  await ok(t, h, 'POST', '/v1/reload');
  t.match((await ok(t, h, 'GET', '/v1/backends/web3')).backend, { leaving: true, flows: 1 }, 'draining');
  const stateDir = path.dirname(h.stateFile!);
  const saved = fs.readFileSync(h.stateFile!);
  fs.rmSync(stateDir, { recursive: true });
  fs.writeFileSync(stateDir, 'not a directory');
  h.advance(TIMEOUTS.halfOpen + 1000);
  h.sweepAndTick();
  t.match((await ok(t, h, 'GET', '/v1/backends/web3')).backend, { leaving: true, flows: 0 }, 'its flow ended, but the removal could not be saved');
  fs.rmSync(stateDir);
  fs.mkdirSync(stateDir);
  fs.writeFileSync(h.stateFile!, saved);
  h.sweepAndTick();
  t.equal((await h.req('GET', '/v1/backends/web3')).status, 404, 'removed on the next tick');
  t.notOk((await vipsOf(h)).some((v) => v.vip === '10.0.0.102'));
});

t.test('metrics: flows per backend, transitions, every drop reason', async (t) => {
  const h = await harness(t);
  await ok(t, h, 'POST', '/v1/backends', { name: 'm1', ip: '10.0.9.1', mac: macFor(0x901), serves: '10.0.0.200:80' }, 201);
  for (let i = 0; i < 3; i++) t.equal(h.syn(`192.0.2.1:${i + 1}`, '10.0.0.200', 80), 'm1');
  t.equal(h.syn('192.0.2.1:9', '10.0.0.101', 22), 'no_service');
  await ok(t, h, 'PATCH', '/v1/backends/web2', { state: 'drain' });
  h.writeConfig('vips: [');
  t.equal((await h.req('POST', '/v1/reload')).status, 422);

  const r = await h.req('GET', '/metrics');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const fams = new Map(parseProm(r.text).map((f) => [f.name, f]));
  const value = (name: string, labels: Record<string, string>): number | undefined => {
    const m = fams.get(name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    return m ? Number(m.value) : undefined;
  };
  t.equal(value('vipgate_backend_flows', { backend: 'm1', ip: '10.0.9.1' }), 3, 'flows of a registered backend');
  t.equal(value('vipgate_backend_flows', { backend: 'm1' }), (await ok(t, h, 'GET', '/v1/backends/m1')).backend.flows);
  t.equal(value('vipgate_backend_connections_total', { backend: 'm1' }), 3);
  t.equal(value('vipgate_backend_transitions_total', { backend: 'web2', to: 'drain' }), 1, 'up -> drain counted');
  t.equal(value('vipgate_backend_transitions_total', { backend: 'm1', to: 'up' }), 1, 'a registration enters up');
  t.equal(value('vipgate_backend_state', { backend: 'web2', state: 'drain' }), 1);
  t.equal(value('vipgate_backend_state', { backend: 'web2', state: 'up' }), 0);
  const drops = fams.get('vipgate_drops_total')!;
  t.equal(drops.type, 'COUNTER');
  t.same(drops.metrics.map((m) => m.labels!['reason']).sort(), [...DROP_REASONS].sort(), 'every drop reason exported');
  t.equal(value('vipgate_drops_total', { reason: 'no_service' }), 1);
  t.equal(value('vipgate_drops_total', { reason: 'flow_table_full' }), 0);
  t.equal(value('vipgate_service_serving', { service: '10.0.0.200:80', backend: 'm1' }), 1);
  t.equal(value('vipgate_state_generation', {}), 2);
  t.equal(value('vipgate_config_reloads_total', { result: 'failed' }), 1);
  t.equal(value('vipgate_config_reloads_total', { result: 'ok' }), 0);
  t.equal(value('vipgate_flows_active', {}), 3);

  // Unregistered and drained away: its series go.
  await ok(t, h, 'DELETE', '/v1/backends/m1?force=true', undefined, 202);
  const fams2 = new Map(parseProm((await h.req('GET', '/metrics')).text).map((f) => [f.name, f]));
  t.notOk(fams2.get('vipgate_backend_flows')!.metrics.some((m) => m.labels?.['backend'] === 'm1'), 'a removed backend has no flows series');
  t.equal(Number(fams2.get('vipgate_backend_transitions_total')!.metrics.find((m) => m.labels?.['backend'] === 'm1' && m.labels?.['to'] === 'removed')?.value), 1);
});
