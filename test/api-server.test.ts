// The runtime API server (control/api.ts) over real HTTP on 127.0.0.1:0, against a fake
// ControlApi that records calls: every route reaches the right method with the right
// arguments and status; the server layer's own rejections (404, 405, 400 query, 415, 413,
// 400 JSON, 401) never reach the controller; what the controller throws is mapped (ApiError
// as is, ECONFIG_* -> 422 with issues, anything else -> 500 without the stack); listen-address
// parsing, the token rule and bind errors; malformed HTTP; close(); a seeded fuzz of 2000
// requests (FUZZ_SEED to reproduce) after which the server still answers; and the JSON error
// locator checked against JSON.parse on 20000 mutated documents.

import t, { type Test } from 'tap';
import * as http from 'node:http';
import * as net from 'node:net';
import {
  isLoopback,
  jsonSyntaxError,
  METRICS_CONTENT_TYPE,
  parseListen,
  startApiServer,
  type ApiServer,
  type ApiServerOptions,
} from '../src/control/api';
import type { LogLevel } from '../src/obs/log';
import { request, type Res, type ReqOpts } from './helpers/http';
import { API_MAX_BODY, ApiError, TOKEN_ENV } from '../src/control/api-types';
import { VipgateError } from '../src/control/errors';
import {
  BACKEND,
  COUNTERS,
  FLOW_PAGE,
  FakeControl,
  NEIGHBOUR,
  RELOAD,
  SERVICE,
  STATUS,
  VIP,
  type Method,
} from './helpers/fake-control';
import { mulberry32 } from './helpers/prng';

// ---- helpers ----

interface LogLine { level: LogLevel; msg: string; fields?: Record<string, unknown> }

async function serve(t: Test, o: Partial<ApiServerOptions> = {}) {
  const fake = new FakeControl();
  const logs: LogLine[] = [];
  const s = await startApiServer({
    listen: '127.0.0.1:0',
    token: null,
    api: fake,
    metrics: async () => '# HELP vipgate_up 1 if up\n# TYPE vipgate_up gauge\nvipgate_up 1\n',
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    ...o,
  });
  t.teardown(() => s.close());
  const call = (method: string, path: string, ro?: ReqOpts) => request(s.address, method, path, ro);
  return { s, fake, logs, call };
}

const JSON_HDR = { 'content-type': 'application/json' };

/** The error body, checked for shape: { error: { code, message, ...} } and nothing else. */
function errorOf(t: Test, r: Res, status: number, code: string) {
  t.equal(r.status, status, `status ${status} (${r.text.trim().slice(0, 160)})`);
  t.match(r.headers['content-type'], /^application\/json/);
  t.same(Object.keys(r.json), ['error']);
  t.equal(r.json.error.code, code);
  t.type(r.json.error.message, 'string');
  t.ok(r.json.error.message.length > 10, 'the message says something');
  return r.json.error as { code: string; message: string; field?: string; issues?: string[] };
}


const SEED = Number(process.env['FUZZ_SEED'] ?? 20240611);

// ---- listen addresses ----

t.test('parseListen: good and bad addresses', async (t) => {
  const good: Array<[string, { host: string; port: number }]> = [
    ['127.0.0.1:9180', { host: '127.0.0.1', port: 9180 }],
    ['[::1]:80', { host: '::1', port: 80 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
    ['[::]:9180', { host: '::', port: 9180 }],
    ['[fe80::1%eth0]:9180', { host: 'fe80::1%eth0', port: 9180 }],
    ['vipgate.lan:9180', { host: 'vipgate.lan', port: 9180 }],
  ];
  for (const [s, want] of good) t.same(parseListen(s), want, s);

  const bad: Array<[string, RegExp]> = [
    ['1.2.3.4', /no port/],
    ['x:99999', /port "99999".*0\.\.65535/],
    ['', /empty/],
    ['   ', /empty/],
    ['127.0.0.1:', /port ""/],
    [':9180', /no host/],
    ['127.0.0.1:-1', /port "-1"/],
    ['127.0.0.1:80a', /port "80a"/],
    ['127.0.0.1:123456', /port/],
    ['999.1.1.1:80', /not an IPv4 address/],
    ['1.2.3:80', /not an IPv4 address/],
    ['::1:80', /IPv6 address without brackets/],
    ['[::1]80', /no ":PORT"/],
    ['[::1:80', /closing "\]"/],
    ['[10.0.0.1]:80', /not an IPv6 address/],
    ['bad_host:80', /not an address or host name/],
    ['-x:80', /not an address or host name/],
  ];
  for (const [s, re] of bad) {
    t.throws(() => parseListen(s), { code: 'EAPI_LISTEN', message: re }, JSON.stringify(s));
  }
  // Every message says what to write instead.
  try { parseListen('x:99999'); } catch (e) {
    t.ok(e instanceof VipgateError, 'a VipgateError');
    t.match((e as Error).message, /127\.0\.0\.1:9180/);
  }
});

t.test('isLoopback: 127/8, ::1 in any spelling, localhost; nothing else', async (t) => {
  for (const h of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) t.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::2', 'vipgate.lan', 'localhost.evil.com']) t.notOk(isLoopback(h), h);
});

t.test('start-up refusals: no token off loopback, bind errors', async (t) => {
  // The refusal comes before any socket: listen() is never called.
  const listen0 = net.Server.prototype.listen;
  let listens = 0;
  net.Server.prototype.listen = function (this: net.Server, ...a: unknown[]) { listens++; return (listen0 as any).apply(this, a); } as typeof listen0;
  try {
    for (const listen of ['0.0.0.0:0', '[::]:0', '192.0.2.1:0', 'vipgate.lan:0']) {
      for (const token of [null, '']) {
        await t.rejects(startApiServer({ listen, token, api: new FakeControl() }), {
          code: 'EAPI_NO_TOKEN',
          message: new RegExp(`api\\.token.*${TOKEN_ENV}`),
        }, `${listen} token=${JSON.stringify(token)}`);
      }
    }
  } finally {
    net.Server.prototype.listen = listen0;
  }
  t.equal(listens, 0, 'nothing was bound');
  await t.rejects(startApiServer({ listen: 'nonsense', token: null, api: new FakeControl() }), { code: 'EAPI_LISTEN' });

  const { s } = await serve(t);
  const e = await startApiServer({ listen: s.address, token: null, api: new FakeControl() }).then(() => null, (x) => x);
  t.ok(e instanceof VipgateError, 'EADDRINUSE is a VipgateError');
  t.equal(e.code, 'EAPI_LISTEN');
  t.match(e.message, s.address, 'names the address');
  t.match(e.message, /in use.*api\.listen/, 'says what to do');
  t.notMatch(e.message, /\n\s+at /, 'no stack');

  // 192.0.2.1 (TEST-NET-1) is on no interface here: EADDRNOTAVAIL, with a token so that the
  // token rule lets it try to bind.
  await t.rejects(startApiServer({ listen: '192.0.2.1:0', token: 'a-token-of-enough-length', api: new FakeControl() }), {
    code: 'EAPI_LISTEN',
    message: /192\.0\.2\.1:0.*not on this host/,
  });
});

// ---- routes ----

t.test('every route dispatches to its method with its arguments and answers its status', async (t) => {
  const { fake, call } = await serve(t);
  const reg = { name: 'web1', ip: '10.0.1.21', serves: ['10.0.0.100:80'], priority: 200, extra: { kept: true } };
  const cases: Array<{ m: string; p: string; body?: unknown; status: number; call: [Method, ...unknown[]]; json: unknown }> = [
    { m: 'GET', p: '/v1/status', status: 200, call: ['status'], json: STATUS },
    { m: 'GET', p: '/v1/vips', status: 200, call: ['vips'], json: { vips: [VIP] } },
    { m: 'GET', p: '/v1/services', status: 200, call: ['services'], json: { services: [SERVICE] } },
    { m: 'POST', p: '/v1/services/10.0.0.100:80/switch', body: { backend: 'web2' }, status: 200, call: ['switchService', '10.0.0.100:80', { backend: 'web2' }], json: { service: SERVICE } },
    { m: 'POST', p: '/v1/services/10.0.0.101/switch', body: { backend: 'web2' }, status: 200, call: ['switchService', '10.0.0.101', { backend: 'web2' }], json: { service: { ...SERVICE, service: '10.0.0.101' } } },
    { m: 'GET', p: '/v1/backends', status: 200, call: ['backends'], json: { backends: [BACKEND] } },
    { m: 'GET', p: '/v1/backends/web1', status: 200, call: ['backend', 'web1'], json: { backend: BACKEND } },
    { m: 'POST', p: '/v1/backends', body: reg, status: 201, call: ['register', reg], json: { backend: BACKEND, created: true } },
    { m: 'PATCH', p: '/v1/backends/web1', body: { state: 'drain', weight: 5 }, status: 200, call: ['setBackend', 'web1', { state: 'drain', weight: 5 }], json: { backend: BACKEND } },
    { m: 'DELETE', p: '/v1/backends/web1', status: 202, call: ['unregister', 'web1', false], json: { backend: { ...BACKEND, leaving: true } } },
    { m: 'DELETE', p: '/v1/backends/web1?force=true', status: 202, call: ['unregister', 'web1', true], json: { backend: { ...BACKEND, leaving: true } } },
    { m: 'DELETE', p: '/v1/backends/web1?force=false', status: 202, call: ['unregister', 'web1', false], json: { backend: { ...BACKEND, leaving: true } } },
    { m: 'GET', p: '/v1/flows', status: 200, call: ['flows', {}], json: FLOW_PAGE },
    {
      m: 'GET', p: '/v1/flows?vip=10.0.0.100&port=80&backend=web1&client=192.0.2.7&state=established&limit=1000&cursor=c1', status: 200,
      call: ['flows', { vip: '10.0.0.100', port: 80, backend: 'web1', client: '192.0.2.7', state: 'established', limit: 1000, cursor: 'c1' }], json: FLOW_PAGE,
    },
    { m: 'GET', p: '/v1/flows?port=0&limit=1&state=syn', status: 200, call: ['flows', { port: 0, limit: 1, state: 'syn' }], json: FLOW_PAGE },
    { m: 'GET', p: '/v1/neighbours', status: 200, call: ['neighbours'], json: { neighbours: [NEIGHBOUR] } },
    { m: 'GET', p: '/v1/counters', status: 200, call: ['counters'], json: COUNTERS },
    { m: 'POST', p: '/v1/reload', status: 200, call: ['reload'], json: RELOAD },
    // A trailing slash is tolerated; path segments are URL-decoded.
    { m: 'GET', p: '/v1/status/', status: 200, call: ['status'], json: STATUS },
    { m: 'GET', p: '/v1/backends/', status: 200, call: ['backends'], json: { backends: [BACKEND] } },
    { m: 'GET', p: '/v1/backends/web%2D1/', status: 200, call: ['backend', 'web-1'], json: { backend: { ...BACKEND, name: 'web-1' } } },
    { m: 'GET', p: '/v1/backends/a%2Fb%20c', status: 200, call: ['backend', 'a/b c'], json: { backend: { ...BACKEND, name: 'a/b c' } } },
    { m: 'POST', p: '/v1/services/10.0.0.100%3A80/switch/', body: { backend: 'web1' }, status: 200, call: ['switchService', '10.0.0.100:80', { backend: 'web1' }], json: { service: SERVICE } },
    { m: 'PATCH', p: '/v1/backends/caf%C3%A9', body: {}, status: 200, call: ['setBackend', 'café', {}], json: { backend: { ...BACKEND, name: 'café' } } },
  ];
  for (const c of cases) {
    fake.reset();
    const r = await call(c.m, c.p, c.body === undefined ? {} : { body: JSON.stringify(c.body), headers: JSON_HDR });
    const name = `${c.m} ${c.p}`;
    t.equal(r.status, c.status, `${name}: status`);
    t.equal(r.headers['content-type'], 'application/json', `${name}: content-type`);
    t.ok(r.text.endsWith('}\n'), `${name}: JSON and a trailing newline`);
    t.same(r.json, c.json, `${name}: body`);
    const [method, ...args] = c.call;
    t.same(fake.calls, [{ method, args }], `${name}: one call ${method}(${args.map((a) => JSON.stringify(a)).join(', ')})`);
  }

  // register: 200 when the registration was renewed rather than created.
  fake.reset();
  fake.created = false;
  const r = await call('POST', '/v1/backends', { body: JSON.stringify(reg), headers: { 'content-type': 'application/json; charset=utf-8' } });
  t.equal(r.status, 200, 'renewed registration: 200');
  t.same(r.json, { backend: BACKEND, created: false });
  // No content-type at all is accepted too.
  fake.reset();
  const r2 = await call('POST', '/v1/backends', { body: JSON.stringify(reg) });
  t.equal(r2.status, 201, 'no content-type: accepted');
  t.same(fake.calls, [{ method: 'register', args: [reg] }]);
});

t.test('/metrics: Prometheus text, content type; a failing collector is a 500', async (t) => {
  let fail = false;
  const { call } = await serve(t, {
    metrics: async () => {
      if (fail) throw new Error('collector exploded');
      return 'vipgate_up 1\n';
    },
  });
  const r = await call('GET', '/metrics');
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], METRICS_CONTENT_TYPE);
  t.equal(r.text, 'vipgate_up 1\n');
  t.equal((await call('GET', '/metrics/')).status, 200, 'trailing slash');
  errorOf(t, await call('POST', '/metrics'), 405, 'EAPI_METHOD_NOT_ALLOWED');
  fail = true;
  const e = errorOf(t, await call('GET', '/metrics'), 500, 'EAPI_INTERNAL');
  t.notMatch(e.message, /exploded/);
});

t.test('without a metrics function /metrics is not served', async (t) => {
  const { call } = await serve(t, { metrics: undefined });
  const e = errorOf(t, await call('GET', '/metrics'), 404, 'EAPI_NOT_FOUND');
  t.notMatch(e.message.slice(e.message.indexOf('serves')), /\/metrics/, 'and not listed as valid');
});

t.test('404 for unknown paths, listing the valid ones; nothing reaches the controller', async (t) => {
  const { fake, call } = await serve(t);
  const paths = ['/', '/v1', '/v1/', '/v2/status', '/v1/statuses', '/v1/status/x', '/v1/backends//', '/v1//backends',
    '/v1/services/x', '/v1/services/x/switch/y', '/v1/backends/a/b', '/V1/STATUS', '/v1/services//switch', '/%', 'http://x/nope', '*'];
  for (const p of paths) {
    for (const m of ['GET', 'POST', 'DELETE']) {
      const e = errorOf(t, await call(m, p, m === 'POST' ? { body: '{}', headers: JSON_HDR } : {}), 404, 'EAPI_NOT_FOUND');
      t.match(e.message, /\/v1\/status.*\/v1\/backends\/\{name\}.*\/v1\/flows.*\/metrics/, `${m} ${p}: lists the paths`);
    }
  }
  t.same(fake.calls, [], 'no call');
  // Absolute-form targets (RFC 9112 3.2.2) are routed by their path.
  t.equal((await call('GET', 'http://vipgate.example/v1/status')).status, 200, 'absolute-form');
});

t.test('405 with an Allow header for a known path and a wrong method', async (t) => {
  const { fake, call } = await serve(t);
  const cases: Array<[string, string, string]> = [
    ['POST', '/v1/status', 'GET'],
    ['DELETE', '/v1/vips', 'GET'],
    ['PUT', '/v1/backends', 'GET, POST'],
    ['DELETE', '/v1/backends', 'GET, POST'],
    ['POST', '/v1/backends/web1', 'GET, PATCH, DELETE'],
    ['PUT', '/v1/backends/web1/', 'GET, PATCH, DELETE'],
    ['GET', '/v1/services/10.0.0.100:80/switch', 'POST'],
    ['GET', '/v1/reload', 'POST'],
    ['PATCH', '/v1/flows', 'GET'],
    ['OPTIONS', '/v1/counters', 'GET'],
    ['PROPFIND', '/v1/neighbours', 'GET'],
  ];
  for (const [m, p, allow] of cases) {
    const r = await call(m, p, { body: '{"name":"x"}', headers: JSON_HDR });
    const e = errorOf(t, r, 405, 'EAPI_METHOD_NOT_ALLOWED');
    t.equal(r.headers['allow'], allow, `${m} ${p}: Allow: ${allow}`);
    t.match(e.message, allow);
  }
  // HEAD: no body, but the status and the Allow header.
  const h = await call('HEAD', '/v1/status');
  t.equal(h.status, 405);
  t.equal(h.headers['allow'], 'GET');
  t.same(fake.calls, [], 'no call');
});

t.test('413 for a body over API_MAX_BODY; the connection closes, the server stays healthy', async (t) => {
  const { s, fake, call } = await serve(t);
  const big = `{"name":"${'x'.repeat(API_MAX_BODY)}"}`;   // valid JSON, 64 KiB + 11 bytes
  t.ok(Buffer.byteLength(big) > API_MAX_BODY);
  // Exactly the limit is still read (and is then just JSON for the controller).
  const exact = `{"n":"${'x'.repeat(API_MAX_BODY - 8)}"}`;
  t.equal(Buffer.byteLength(exact), API_MAX_BODY);
  const ok = await call('POST', '/v1/backends', { body: exact, headers: JSON_HDR });
  t.equal(ok.status, 201, 'a body of exactly API_MAX_BODY bytes is accepted');
  fake.reset();

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const variants: Array<[string, () => Promise<Res>]> = [
    ['POST, content-length', () => call('POST', '/v1/backends', { body: big, headers: JSON_HDR, agent })],
    ['PATCH, content-length', () => call('PATCH', '/v1/backends/web1', { body: big, headers: JSON_HDR, agent })],
    ['switch, 8 MiB', () => call('POST', '/v1/services/x/switch', { body: Buffer.alloc(8 << 20, 0x20), headers: JSON_HDR, agent })],
    ['POST, chunked (no length: counted while read)', () => chunked('/v1/backends', big)],
  ];
  for (const [name, send] of variants) {
    const r = await send();
    const e = errorOf(t, r, 413, 'EAPI_BODY_TOO_LARGE');
    t.match(e.message, String(API_MAX_BODY), `${name}: says the limit`);
    t.equal(r.headers['connection'], 'close', `${name}: connection: close`);
    // The next request, on the same agent (a new connection), is answered normally.
    const next = await call('GET', '/v1/status', { agent });
    t.equal(next.status, 200, `${name}: the server still answers`);
  }
  t.same(fake.mutations(), [], 'no mutation reached the controller');

  function chunked(path: string, body: string): Promise<Res> {
    const port = Number(s.address.slice(s.address.lastIndexOf(':') + 1));
    return new Promise((resolve, reject) => {
      let answered = false;
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers: JSON_HDR, agent }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) });
        });
      });
      req.on('error', (e) => { if (!answered) reject(e); });
      // Written in parts without a content-length: node:http sends it chunked.
      for (let i = 0; i < body.length; i += 4096) req.write(body.slice(i, i + 4096));
      req.end();
    });
  }
});

t.test('415 for a content type other than application/json', async (t) => {
  const { fake, call } = await serve(t);
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx', 'multipart/form-data; boundary=x', 'json', '']) {
    const e = errorOf(t, await call('POST', '/v1/backends', { body: '{"name":"a"}', headers: { 'content-type': ct } }), 415, 'EAPI_UNSUPPORTED_MEDIA_TYPE');
    t.match(e.message, /application\/json/, `${JSON.stringify(ct)}: says what to send`);
  }
  for (const ct of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset=UTF-8']) {
    fake.reset();
    const r = await call('PATCH', '/v1/backends/web1', { body: '{"weight":1}', headers: { 'content-type': ct } });
    t.equal(r.status, 200, `${ct}: accepted`);
    t.same(fake.calls, [{ method: 'setBackend', args: ['web1', { weight: 1 }] }]);
  }
  fake.reset();
  errorOf(t, await call('POST', '/v1/services/x/switch', { body: '{}', headers: { 'content-type': 'text/json' } }), 415, 'EAPI_UNSUPPORTED_MEDIA_TYPE');
  t.same(fake.mutations(), []);
});

t.test('bodies: empty, malformed JSON (with position), not an object, not UTF-8', async (t) => {
  const { fake, call } = await serve(t);
  const targets: Array<[string, string]> = [['POST', '/v1/backends'], ['PATCH', '/v1/backends/web1'], ['POST', '/v1/services/10.0.0.100:80/switch']];
  for (const [m, p] of targets) {
    for (const body of ['', '   ', '\n']) {
      const e = errorOf(t, await call(m, p, { body, headers: JSON_HDR }), 400, 'EAPI_BAD_JSON');
      t.match(e.message, /empty.*JSON object/, `${m} ${p} ${JSON.stringify(body)}: empty`);
    }
    // No body at all (no content-length, no transfer-encoding) is empty too.
    errorOf(t, await call(m, p, { headers: JSON_HDR }), 400, 'EAPI_BAD_JSON');
  }
  const malformed: Array<[string, RegExp]> = [
    ['{"a":1,}', /position 7 \(line 1, column 8\)/],
    ['abc', /position 0 \(line 1, column 1\)/],
    ['{"a":tru}', /expected true.*position 8/],
    ['{', /position 1/],
    ['{"name": "web1"', /expected ',' or '}'.*position 15/],
    ['{"a":1}x', /unexpected text after the JSON value.*position 7/],
    ['{\n  "a": 1\n  "b": 2\n}', /expected ',' or '}'.*line 3, column 3/],
    ['{"a":"\\q"}', /bad escape.*position 7/],
    ["{'a':1}", /double-quoted property name.*position 1/],
    ['{"a":01}', /position 6/],
    ['\u0000', /position 0/],
  ];
  for (const [body, re] of malformed) {
    const e = errorOf(t, await call('POST', '/v1/backends', { body, headers: JSON_HDR }), 400, 'EAPI_BAD_JSON');
    t.match(e.message, /not valid JSON/, JSON.stringify(body));
    t.match(e.message, re, `${JSON.stringify(body)}: where`);
  }
  const notObject: Array<[string, RegExp]> = [
    ['[]', /an array/], ['[{"name":"a"}]', /an array/], ['1', /a number/], ['"x"', /a string/], ['null', /null/], ['true', /a boolean/],
  ];
  for (const [body, re] of notObject) {
    const e = errorOf(t, await call('PATCH', '/v1/backends/web1', { body, headers: JSON_HDR }), 400, 'EAPI_BAD_JSON');
    t.match(e.message, re, body);
    t.match(e.message, /JSON object/);
  }
  const e = errorOf(t, await call('POST', '/v1/backends', { body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), headers: JSON_HDR }), 400, 'EAPI_BAD_JSON');
  t.match(e.message, /UTF-8/);
  t.same(fake.mutations(), [], 'no mutation reached the controller');

  // A UTF-8 BOM and surrounding whitespace are fine.
  const r = await call('POST', '/v1/backends', { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(' {"name":"é"}\n')]), headers: JSON_HDR });
  t.equal(r.status, 201);
  t.same(fake.mutations(), [{ method: 'register', args: [{ name: 'é' }] }]);
});

t.test('POST /v1/reload ignores any body and content type', async (t) => {
  const { fake, call } = await serve(t);
  for (const o of [{}, { body: 'not json at all', headers: { 'content-type': 'text/plain' } }, { body: '[1,2]', headers: JSON_HDR }]) {
    fake.reset();
    const r = await call('POST', '/v1/reload', o);
    t.equal(r.status, 200);
    t.same(r.json, RELOAD);
    t.same(fake.calls, [{ method: 'reload', args: [] }]);
  }
});

t.test('query parameters: validated for /v1/flows and DELETE, unknown ones rejected everywhere', async (t) => {
  const { fake, call } = await serve(t);
  const bad: Array<[string, string, string, RegExp]> = [
    ['GET', '/v1/flows?port=65536', 'port', /0\.\.65535/],
    ['GET', '/v1/flows?port=-1', 'port', /0\.\.65535/],
    ['GET', '/v1/flows?port=1.5', 'port', /integer/],
    ['GET', '/v1/flows?port=abc', 'port', /"abc"/],
    ['GET', '/v1/flows?port=', 'port', /integer/],
    ['GET', '/v1/flows?port=%2080', 'port', /integer/],
    ['GET', '/v1/flows?limit=0', 'limit', /1\.\.1000/],
    ['GET', '/v1/flows?limit=1001', 'limit', /1\.\.1000/],
    ['GET', '/v1/flows?limit=ten', 'limit', /1\.\.1000/],
    ['GET', '/v1/flows?state=open', 'state', /syn, established, closing/],
    ['GET', '/v1/flows?state=SYN', 'state', /syn, established, closing/],
    ['GET', '/v1/flows?vip=', 'vip', /empty/],
    ['GET', '/v1/flows?cursor=', 'cursor', /empty/],
    ['GET', '/v1/flows?port=80&port=81', 'port', /more than once/],
    ['GET', '/v1/flows?sort=age', 'sort', /unknown query parameter "sort".*vip, port, backend, client, state, limit, cursor/],
    ['GET', '/v1/flows?vip=10.0.0.1&sort=age&dir=up', 'sort', /unknown query parameters "sort", "dir"/],
    ['DELETE', '/v1/backends/web1?force=yes', 'force', /force=true.*force=false/],
    ['DELETE', '/v1/backends/web1?force=', 'force', /force=true/],
    ['DELETE', '/v1/backends/web1?force=TRUE', 'force', /force=true/],
    ['DELETE', '/v1/backends/web1?now=1', 'now', /unknown query parameter "now".*accepts force/],
    ['GET', '/v1/status?verbose=1', 'verbose', /takes no query parameters/],
    ['GET', '/v1/backends/web1?x', 'x', /unknown/],
  ];
  for (const [m, p, field, re] of bad) {
    const e = errorOf(t, await call(m, p), 400, 'EAPI_INVALID');
    t.equal(e.field, field, `${m} ${p}: field ${field}`);
    t.match(e.message, re, `${m} ${p}: message`);
  }
  errorOf(t, await call('POST', '/v1/backends?x=1', { body: '{}', headers: JSON_HDR }), 400, 'EAPI_INVALID');
  t.same(fake.calls, [], 'no call reached the controller');

  // Encoded values are decoded ("+" and %20 are spaces, %3A a colon).
  const r = await call('GET', '/v1/flows?client=192.0.2.7%3A40000&backend=web+1&port=%38%30');
  t.equal(r.status, 200);
  t.same(fake.calls, [{ method: 'flows', args: [{ client: '192.0.2.7:40000', backend: 'web 1', port: 80 }] }]);
  // A name that is not valid URL encoding: 400 naming the path parameter.
  fake.reset();
  const e = errorOf(t, await call('GET', '/v1/backends/web%ZZ'), 400, 'EAPI_INVALID');
  t.equal(e.field, 'name');
  const e2 = errorOf(t, await call('POST', '/v1/services/%E0%A4%A/switch', { body: '{}', headers: JSON_HDR }), 400, 'EAPI_INVALID');
  t.equal(e2.field, 'service');
  t.same(fake.calls, []);
});

// ---- what the controller throws ----

t.test('ApiError from the controller passes through: status, code, field, issues', async (t) => {
  const { fake, call } = await serve(t);
  const cases: Array<[Method, string, string, ApiError]> = [
    ['register', 'POST', '/v1/backends', new ApiError('EAPI_INVALID', 'priority must be an integer 1..255', 'priority')],
    ['register', 'POST', '/v1/backends', new ApiError('EAPI_EXISTS', 'a backend web1 exists with another ip')],
    ['register', 'POST', '/v1/backends', new ApiError('EAPI_CONFLICT', '10.0.0.100 is a VIP', 'ip')],
    ['setBackend', 'PATCH', '/v1/backends/web1', new ApiError('EAPI_CONFIG_OWNED', 'web1 is defined in the config file: change the file and reload')],
    ['unregister', 'DELETE', '/v1/backends/nope', new ApiError('EAPI_UNKNOWN_BACKEND', 'no backend nope', 'name')],
    ['switchService', 'POST', '/v1/services/10.9.9.9/switch', new ApiError('EAPI_UNKNOWN_SERVICE', 'no service 10.9.9.9')],
    ['backend', 'GET', '/v1/backends/nope', new ApiError('EAPI_UNKNOWN_BACKEND', 'no backend nope')],
    ['flows', 'GET', '/v1/flows?cursor=zz', new ApiError('EAPI_INVALID', 'cursor is stale', 'cursor')],
    ['register', 'POST', '/v1/backends', new ApiError('EAPI_STATE_WRITE', 'cannot write /var/lib/vipgate/state.json: disk full; nothing changed')],
    ['reload', 'POST', '/v1/reload', new ApiError('ECONFIG_INVALID', 'two problems', undefined, ['a', 'b'])],
  ];
  for (const [method, m, p, err] of cases) {
    fake.reset();
    fake.throws.set(method, err);
    const r = await call(m, p, m === 'POST' || m === 'PATCH' ? { body: '{"name":"web1"}', headers: JSON_HDR } : {});
    t.equal(r.status, err.status, `${err.code}: status ${err.status}`);
    t.same(r.json, { error: err.body() }, `${err.code}: body`);
    t.equal(fake.calls.length, 1, `${err.code}: the controller was called`);
  }
});

t.test('ECONFIG_* from reload -> 422 with one issue per line', async (t) => {
  const { fake, call } = await serve(t);
  const msg = '/etc/vipgate.yaml:3:5: backends[0].ip: "10.0.1" is not an IPv4 address\n/etc/vipgate.yaml:9:1: services[1]: unknown backend web9';
  for (const code of ['ECONFIG_INVALID', 'ECONFIG_SYNTAX', 'ECONFIG_IO']) {
    fake.throws.set('reload', new VipgateError(code, msg));
    const r = await call('POST', '/v1/reload');
    t.equal(r.status, 422, code);
    t.same(r.json, {
      error: {
        code,
        message: msg,
        issues: ['/etc/vipgate.yaml:3:5: backends[0].ip: "10.0.1" is not an IPv4 address', '/etc/vipgate.yaml:9:1: services[1]: unknown backend web9'],
      },
    });
  }
});

t.test('anything else thrown -> 500 EAPI_INTERNAL, no stack to the client, the stack in the log', async (t) => {
  const { fake, logs, call } = await serve(t);
  const boom = new TypeError('Cannot read properties of undefined (reading secretField)');
  const cases: Array<[Method, string, string, unknown]> = [
    ['register', 'POST', '/v1/backends', boom],
    ['status', 'GET', '/v1/status', boom],
    ['reload', 'POST', '/v1/reload', new VipgateError('EAPI_SOMETHING', 'not an ApiError')],
    ['flows', 'GET', '/v1/flows', 'a thrown string'],
    ['counters', 'GET', '/v1/counters', undefined],
  ];
  for (const [method, m, p, thrown] of cases) {
    fake.reset();
    fake.throws.set(method, thrown);
    logs.length = 0;
    const r = await call(m, p, m === 'POST' ? { body: '{}', headers: JSON_HDR } : {});
    const e = errorOf(t, r, 500, 'EAPI_INTERNAL');
    t.same(Object.keys(e), ['code', 'message'], `${m} ${p}: only code and message`);
    t.notMatch(r.text, /secretField|TypeError|\.js:\d+|\bat /, `${m} ${p}: no stack or error text`);
    await new Promise((res) => setImmediate(res));
    const err = logs.find((l) => l.level === 'error');
    t.ok(err, `${m} ${p}: logged at error`);
    if (thrown instanceof Error) t.match(String(err?.fields?.['error']), thrown.stack!.split('\n')[1]!.trim(), 'with the stack');
  }
  // A response the controller cannot serialize (a BigInt) is a 500 too, not a crash.
  fake.reset();
  const orig = fake.status.bind(fake);
  fake.status = () => ({ ...orig(), pid: 1n as unknown as number });
  errorOf(t, await call('GET', '/v1/status'), 500, 'EAPI_INTERNAL');
  fake.status = orig;
  t.equal((await call('GET', '/v1/status')).status, 200, 'still serving');
});

// ---- token ----

t.test('bearer token: every request needs it, /metrics too; compared in constant time', async (t) => {
  const token = 'tok-0123456789abcdef-XYZ';
  const { fake, call } = await serve(t, { token });
  const auth = (v: string) => ({ headers: { authorization: v } });
  const unauthorized = [
    ['GET', '/v1/status', {}],
    ['GET', '/v1/status', auth('Bearer wrong')],
    ['GET', '/v1/status', auth(`Bearer ${token}x`)],
    ['GET', '/v1/status', auth(`Bearer ${token.slice(0, -1)}`)],
    ['GET', '/v1/status', auth(`Basic ${Buffer.from(`u:${token}`).toString('base64')}`)],
    ['GET', '/v1/status', auth(token)],
    ['GET', '/v1/status', auth('Bearer')],
    ['GET', '/v1/status', auth(`Bearer ${token} extra`)],
    ['GET', '/metrics', {}],
    ['GET', '/metrics', auth('Bearer nope')],
    ['GET', '/no/such/path', {}],            // 401 before 404: nothing about paths leaks
    ['PUT', '/v1/status', {}],               // before 405
    ['POST', '/v1/backends', { body: '{"name":"a"}', headers: JSON_HDR }],
    ['POST', '/v1/reload', {}],
    ['DELETE', '/v1/backends/web1?force=true', auth('Bearer ')],
  ] as Array<[string, string, ReqOpts]>;
  for (const [m, p, o] of unauthorized) {
    const r = await call(m, p, o);
    const e = errorOf(t, r, 401, 'EAPI_UNAUTHORIZED');
    t.equal(r.headers['www-authenticate'], 'Bearer', `${m} ${p} ${JSON.stringify(o.headers ?? {})}: WWW-Authenticate`);
    t.match(e.message, TOKEN_ENV);
    t.notMatch(r.text, token, 'never echoes the token');
  }
  t.same(fake.calls, [], 'nothing reached the controller');

  const good = auth(`Bearer ${token}`);
  t.equal((await call('GET', '/v1/status', good)).status, 200, 'right token: 200');
  t.equal((await call('GET', '/v1/status', auth(`bearer  ${token}`))).status, 200, 'the scheme is case-insensitive');
  const m = await call('GET', '/metrics', good);
  t.equal(m.status, 200, '/metrics with the token');
  t.match(m.text, /vipgate_up 1/);
  const reg = await call('POST', '/v1/backends', { body: '{"name":"a"}', headers: { ...JSON_HDR, authorization: `Bearer ${token}` } });
  t.equal(reg.status, 201);
  t.same(fake.mutations(), [{ method: 'register', args: [{ name: 'a' }] }]);
});

t.test('loopback without a token: 127.0.0.1, localhost, [::1]; an empty token means none', async (t) => {
  const { call } = await serve(t, { token: '' });
  t.equal((await call('GET', '/v1/status')).status, 200, 'empty token: open on loopback');
  for (const listen of ['localhost:0', '[::1]:0']) {
    let s: ApiServer;
    try {
      s = await startApiServer({ listen, token: null, api: new FakeControl() });
    } catch (e) {
      // A host without IPv6 loopback cannot bind [::1]: then it must be a clean listen error.
      t.match(e, { code: 'EAPI_LISTEN' }, `${listen}: not available here`);
      continue;
    }
    t.teardown(() => s.close());
    t.ok(isLoopback(s.address.slice(0, s.address.lastIndexOf(':')).replace(/^\[|\]$/g, '')), `${listen}: bound ${s.address}`);
    t.equal((await request(s.address, 'GET', '/v1/vips')).status, 200, `${listen}: serves`);
  }
});

// ---- logging ----

t.test('logging: mutations at info, reads at debug, with method, path, status, ms', async (t) => {
  const { logs, call } = await serve(t);
  t.match(logs, [{ level: 'info', msg: /listening/, fields: { address: /^127\.0\.0\.1:\d+$/ } }], 'start-up logged');
  logs.length = 0;
  await call('POST', '/v1/reload');
  await call('GET', '/v1/status?x=1');
  await call('DELETE', '/v1/backends/web1');
  await call('GET', '/v1/vips');
  await new Promise((res) => setImmediate(res));
  t.match(logs, [
    { level: 'info', fields: { method: 'POST', path: '/v1/reload', status: 200, ms: Number } },
    { level: 'debug', fields: { method: 'GET', path: '/v1/status', status: 400 } },
    { level: 'info', fields: { method: 'DELETE', path: '/v1/backends/web1', status: 202 } },
    { level: 'debug', fields: { method: 'GET', path: '/v1/vips', status: 200 } },
  ]);
  t.equal(logs.length, 4, 'one line per request');
});

// ---- HTTP-level junk and shutdown ----

function rawExchange(address: string, data: string | Buffer): Promise<string> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(address.slice(i + 1)), address.slice(0, i));
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE') ? resolve(Buffer.concat(chunks).toString()) : reject(e));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString()));
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error('no answer in 5 s')); });
    sock.end(data);
  });
}

t.test('malformed HTTP gets a JSON 400 (431 for huge headers) and the server goes on', async (t) => {
  const { s, fake, call } = await serve(t);
  const junk: Array<[string, string | Buffer, number]> = [
    ['garbage line', 'GARBAGE\r\n\r\n', 400],
    ['unknown method', 'FOO /v1/status HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['binary', Buffer.from([0, 1, 2, 3, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]), 400],
    ['bad header', 'GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', 400],
    ['bad content-length', 'POST /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}', 400],
    ['two content-lengths', 'POST /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400],
    ['smuggling: chunked and length', 'POST /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['bad chunk', 'POST /v1/backends HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', 400],
    ['huge header', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ];
  for (const [name, data, status] of junk) {
    const text = await rawExchange(s.address, data);
    t.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${status}`);
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    t.match(text, /content-type: application\/json/i, `${name}: JSON`);
    t.match(JSON.parse(body), { error: { code: 'EAPI_INVALID', message: String } }, `${name}: an error body`);
  }
  t.same(fake.mutations(), []);
  t.equal((await call('GET', '/v1/status')).status, 200, 'still serving');
  // A well-formed raw request is answered the same way as through the client.
  const ok = await rawExchange(s.address, 'GET /v1/vips HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.match(ok, /^HTTP\/1\.1 200 /);
});

t.test('a client that goes away mid-body does not disturb the server', async (t) => {
  const { s, fake, call } = await serve(t);
  const i = s.address.lastIndexOf(':');
  await new Promise<void>((resolve) => {
    const sock = net.connect(Number(s.address.slice(i + 1)), '127.0.0.1', () => {
      sock.write('POST /v1/backends HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name":');
      setTimeout(() => { sock.destroy(); resolve(); }, 50);
    });
  });
  await new Promise((res) => setTimeout(res, 50));
  t.same(fake.mutations(), [], 'nothing registered');
  t.equal((await call('GET', '/v1/status')).status, 200, 'still serving');
});

t.test('close() closes idle keep-alive connections and stops listening; twice is fine', async (t) => {
  const fake = new FakeControl();
  const s: ApiServer = await startApiServer({ listen: '127.0.0.1:0', token: null, api: fake });
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  t.equal((await request(s.address, 'GET', '/v1/status', { agent })).status, 200);
  const idle = Object.values(agent.freeSockets).flat();
  t.equal(idle.length, 1, 'an idle keep-alive connection');
  // Free agent sockets are unref'd: the timer keeps the test alive while waiting for 'close'.
  const closed = new Promise<boolean>((res) => {
    const timer = setTimeout(() => res(false), 2000);
    idle[0]!.once('close', () => { clearTimeout(timer); res(true); });
  });
  const t0 = Date.now();
  await s.close();
  t.ok(Date.now() - t0 < 1000, 'close() does not wait for the keep-alive timeout');
  t.ok(await closed, 'the idle connection was closed');
  await s.close();
  await t.rejects(request(s.address, 'GET', '/v1/status'), { code: 'ECONNREFUSED' }, 'no longer listening');
});

// ---- fuzz ----

t.test(`fuzz: 2000 random requests (FUZZ_SEED=${SEED}); every one answered, no crash, no mutation on a server-layer 4xx`, async (t) => {
  const { fake, call } = await serve(t);
  const rnd = mulberry32(SEED);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const methods = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'FOO'];
  // Routes with their methods (most requests), then paths near them.
  const valid: Array<[string, string]> = [
    ['GET', '/v1/status'], ['GET', '/v1/vips'], ['GET', '/v1/services'], ['POST', '/v1/services/10.0.0.100:80/switch'],
    ['POST', '/v1/services/10.0.0.100/switch'], ['GET', '/v1/backends'], ['POST', '/v1/backends'], ['POST', '/v1/backends/'],
    ['GET', '/v1/backends/web1'], ['PATCH', '/v1/backends/web1'], ['PATCH', '/v1/backends/web%201/'], ['DELETE', '/v1/backends/web1'],
    ['DELETE', '/v1/backends/web1?force=true'], ['GET', '/v1/flows'], ['GET', '/v1/flows?limit=5&state=syn&port=80'],
    ['GET', '/v1/neighbours'], ['GET', '/v1/counters'], ['POST', '/v1/reload'], ['GET', '/metrics'],
  ];
  const paths = [...valid.map(([, p]) => p), '/', '/v1', '/v1/backends/%ZZ', '/v1/backends/a%2F..%2F', '/v1/flows?port=99999',
    '/v1/flows?port=80&vip=10.0.0.100&junk=1', '/v1/backends/web1?force=maybe', '/v1/services//switch', '/v1/status?x'];
  const alphabet = 'abcxyz019/%?&=.:-_~+;,[]@!$\'()*';
  const junk = () => { let s = '/'; for (let k = int(40); k > 0; k--) s += alphabet[int(alphabet.length)]; return s; };
  const randJson = (d: number): unknown => {
    switch (int(d > 3 ? 5 : 8)) {
      case 0: return null;
      case 1: return rnd() < 0.5;
      case 2: return (rnd() - 0.5) * 10 ** int(20);
      case 3: return String.fromCharCode(...Array.from({ length: int(12) }, () => int(0x3000)));
      case 4: return int(100);
      case 5: return Array.from({ length: int(4) }, () => randJson(d + 1));
      default: return Object.fromEntries(Array.from({ length: int(4) }, () => [pick(['name', 'ip', 'serves', 'state', 'weight', 'backend', '__proto__', 'x']), randJson(d + 1)]));
    }
  };
  const body = (): Buffer | string | undefined => {
    switch (int(7)) {
      case 0: return undefined;
      case 1: return Buffer.from(Array.from({ length: int(300) }, () => int(256)));
      case 2: return JSON.stringify(randJson(0));
      case 3: return JSON.stringify({ name: 'web1', ip: '10.0.1.21', serves: '10.0.0.100:80' });
      case 4: return `{"s":"${'y'.repeat(API_MAX_BODY + int(5000))}"}`;
      case 5: { const j = JSON.stringify(randJson(0)) ?? 'null'; const k = int(j.length + 1); return j.slice(0, k) + pick(['', '}', ',', '"', 'x', '\\']) + j.slice(k); }
      default: return '';
    }
  };
  const cts = [undefined, undefined, 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'x'];

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const allowed = new Set([200, 201, 202, 400, 404, 405, 413, 415]);
  let bad = 0;
  const fail = (i: number, what: string) => { if (bad++ < 10) t.fail(`#${i}: ${what}`); };
  const statuses = new Map<number, number>();
  for (let i = 0; i < 2000; i++) {
    const roll = rnd();
    const [m, p] = roll < 0.6 ? pick(valid) : roll < 0.85 ? [pick(methods), pick(paths)] : [pick(methods), junk()];
    const b = body();
    const ct = pick(cts);
    const before = fake.mutations().length;
    let r: Res;
    try {
      r = await call(m, p, { body: b, headers: ct ? { 'content-type': ct } : {}, agent });
    } catch (e) {
      fail(i, `${m} ${p}: no answer: ${(e as Error).message}`);
      continue;
    }
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const what = `${m} ${p} ${ct ?? '-'} body ${b === undefined ? '-' : Buffer.byteLength(b)}B -> ${r.status} ${r.text.slice(0, 120)}`;
    if (!allowed.has(r.status)) fail(i, `unexpected status: ${what}`);
    if (m !== 'HEAD') {
      if (p.startsWith('/metrics') && r.status === 200) {
        if (r.headers['content-type'] !== METRICS_CONTENT_TYPE) fail(i, `metrics content-type: ${what}`);
      } else if (r.json === undefined || typeof r.json !== 'object') {
        fail(i, `not JSON: ${what}`);
      } else if (r.status >= 400 && (typeof r.json.error?.code !== 'string' || typeof r.json.error?.message !== 'string')) {
        fail(i, `not an error body: ${what}`);
      }
    }
    const delta = fake.mutations().length - before;
    if (r.status >= 400 && delta !== 0) fail(i, `a mutation reached the controller on a ${r.status}: ${what}`);
    if (r.status < 300 && delta !== (['POST', 'PATCH', 'DELETE'].includes(m) ? 1 : 0)) fail(i, `${delta} mutations for a ${r.status}: ${what}`);
  }
  t.equal(bad, 0, 'every request answered as expected');
  const spread = JSON.stringify([...statuses].sort((a, b) => a[0] - b[0]));
  for (const st of [200, 201, 202, 400, 404, 405, 413, 415]) t.ok((statuses.get(st) ?? 0) >= 10, `at least 10 answers ${st}: ${spread}`);
  t.ok(fake.mutations().length > 100, `mutations went through: ${fake.mutations().length}`);
  t.equal((await call('GET', '/v1/status')).status, 200, 'still serving after the fuzz');
});

t.test(`jsonSyntaxError agrees with JSON.parse on mutated JSON (FUZZ_SEED=${SEED})`, async (t) => {
  const rnd = mulberry32(SEED ^ 0x5eed);
  const int = (n: number) => Math.floor(rnd() * n);
  const seeds = ['{"a":[1,2.5e-3,-0,true,false,null,"x\\u00e9\\n"],"b":{}}', '[]', '{"name":"web1","serves":["10.0.0.100:80"],"w":-12.0E+2}', '"s"', '0', ' [ { } , [ ] ] '];
  const pieces = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '-', '.', 'e', '+', 't', 'n', ' ', '\n', '\u0001', 'é', 'x'];
  let disagree = 0;
  for (let i = 0; i < 20000; i++) {
    let s = seeds[int(seeds.length)]!;
    for (let k = int(3); k >= 0; k--) {
      const at = int(s.length + 1);
      const op = int(3);
      if (op === 0) s = s.slice(0, at) + pieces[int(pieces.length)] + s.slice(at);
      else if (op === 1) s = s.slice(0, at) + s.slice(at + 1);
      else s = s.slice(0, at) + pieces[int(pieces.length)] + s.slice(at + 1);
    }
    let valid = true;
    try { JSON.parse(s); } catch { valid = false; }
    const e = jsonSyntaxError(s);
    if ((e === null) !== valid) {
      if (disagree++ < 5) t.fail(`${JSON.stringify(s)}: JSON.parse ${valid ? 'accepts' : 'rejects'}, the scanner says ${JSON.stringify(e)}`);
    }
    // Where JSON.parse names a position, the scanner names the same one.
    if (!valid && e) {
      try { JSON.parse(s); } catch (x) {
        const m = / at position (\d+)/.exec((x as Error).message);
        if (m && Number(m[1]) !== e.pos && disagree++ < 5) t.fail(`${JSON.stringify(s)}: V8 says position ${m[1]}, the scanner ${e.pos}`);
      }
    }
  }
  t.equal(disagree, 0, '20000 strings: same verdict, same position where V8 gives one');
});
