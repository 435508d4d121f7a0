// Structured logs: every json line parses with time, level, msg and the fields in that order;
// level filtering (and changing the level at run time); child loggers; Errors as fields (stack
// only at debug); the text format line by line; parseLogLevel.

import t from 'tap';
import { createLogger, parseLogLevel, type LogLevel } from '../src/obs/log';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

/** A stream collecting what is written, and a clock the test moves. */
function sink() {
  const writes: string[] = [];
  return {
    writes,
    stream: { write(s: string) { writes.push(s); return true; } },
    lines: () => writes.join('').split('\n').filter((l) => l !== ''),
    json: () => writes.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

t.test('json: one object per line, time level msg then fields', async (t) => {
  const s = sink();
  let now = T0;
  const log = createLogger({ stream: s.stream, now: () => now });
  log.info('backend registered', { backend: 'web1', ip: '10.0.0.11', weight: 100, lease: null, ok: true });
  now += 1500;
  log.warn('state file slow', { ms: 250.5, nested: { a: [1, 2] } });

  t.equal(s.writes.length, 2, 'one write per line');
  t.ok(s.writes.every((w) => w.endsWith('\n') && w.indexOf('\n') === w.length - 1), 'each write is one whole line');
  const [a, b] = s.json();
  t.same(a, { time: '2026-11-22T10:00:00.000Z', level: 'info', msg: 'backend registered', backend: 'web1', ip: '10.0.0.11', weight: 100, lease: null, ok: true });
  t.same(Object.keys(a!), ['time', 'level', 'msg', 'backend', 'ip', 'weight', 'lease', 'ok'], 'key order');
  t.same(b, { time: '2026-11-22T10:00:01.500Z', level: 'warn', msg: 'state file slow', ms: 250.5, nested: { a: [1, 2] } });
  t.notOk('pid' in a! || 'hostname' in a!, 'no pid/hostname unless in base');
});

t.test('json: base, reserved names, awkward values', async (t) => {
  const s = sink();
  const log = createLogger({ stream: s.stream, now: () => T0, base: { pid: 42, node: 'lb1' } });
  const circ: Record<string, unknown> = { name: 'loop' };
  circ.self = circ;
  log.error('odd', { time: 'mine', level: 'mine', msg: 'mine', n: NaN, u: undefined, circ, quote: 'a"b\nc' });
  const lines = s.lines();
  t.equal(lines.length, 1, 'a newline inside a value stays escaped: still one line');
  const [r] = s.json();
  t.equal(r!.time, '2026-11-22T10:00:00.000Z');
  t.equal(r!.level, 'error');
  t.equal(r!.msg, 'odd');
  t.equal(r!.pid, 42);
  t.equal(r!.node, 'lb1');
  t.same([r!.field_time, r!.field_level, r!.field_msg], ['mine', 'mine', 'mine'], 'colliding fields are renamed, not overwriting');
  t.equal(r!.n, null);
  t.notOk('u' in r!, 'undefined fields are left out');
  t.equal((r!.circ as Record<string, unknown>).name, 'loop', 'a circular object does not break the line');
  t.equal(r!.quote, 'a"b\nc');
});

t.test('level filtering, and changing it at run time', async (t) => {
  const emitted = (level: LogLevel | undefined) => {
    const s = sink();
    const log = createLogger({ stream: s.stream, ...(level ? { level } : {}) });
    log.debug('d'); log.info('i'); log.warn('w'); log.error('e');
    return s.json().map((r) => r.level);
  };
  t.same(emitted(undefined), ['info', 'warn', 'error'], 'default info');
  t.same(emitted('debug'), ['debug', 'info', 'warn', 'error']);
  t.same(emitted('info'), ['info', 'warn', 'error']);
  t.same(emitted('warn'), ['warn', 'error']);
  t.same(emitted('error'), ['error']);

  const s = sink();
  const log = createLogger({ stream: s.stream, level: 'warn' });
  const child = log.child({ part: 'api' });
  log.info('hidden');
  child.info('hidden');
  log.level = 'debug';
  t.equal(child.level, 'debug', 'a child shares its parent\'s level');
  child.debug('shown');
  t.same(s.json().map((r) => r.msg), ['shown']);
  t.throws(() => { log.level = 'verbose' as LogLevel; }, /unknown level "verbose"/);
  t.equal(log.level, 'debug');
});

t.test('child adds fields; the line\'s own fields come after and win', async (t) => {
  const s = sink();
  const log = createLogger({ stream: s.stream, now: () => T0, base: { app: 'vipgate' } });
  const api = log.child({ part: 'api' });
  const req = api.child({ req: 7, part: 'api/v1' });
  req.info('request', { status: 200, req: 8 });
  api.info('listening');
  log.info('root');
  const [a, b, c] = s.json();
  t.same(a, { time: '2026-11-22T10:00:00.000Z', level: 'info', msg: 'request', app: 'vipgate', part: 'api/v1', req: 8, status: 200 });
  t.same(b, { time: '2026-11-22T10:00:00.000Z', level: 'info', msg: 'listening', app: 'vipgate', part: 'api' });
  t.same(c, { time: '2026-11-22T10:00:00.000Z', level: 'info', msg: 'root', app: 'vipgate' }, 'the parent is unchanged');
});

t.test('errors as fields: message and code; the stack only at debug', async (t) => {
  const err = Object.assign(new Error('cannot write /var/lib/vipgate/state.json: EACCES'), { code: 'EAPI_STATE_WRITE' });
  const s = sink();
  const log = createLogger({ stream: s.stream });
  log.error('state not saved', { err });
  log.warn('bad request', { cause: new TypeError('body is not JSON') });
  const [a, b] = s.json();
  t.same(a!.err, { message: 'cannot write /var/lib/vipgate/state.json: EACCES', code: 'EAPI_STATE_WRITE' });
  t.same(b!.cause, { message: 'body is not JSON', name: 'TypeError' }, 'any Error-valued field, not only err');

  const d = sink();
  createLogger({ stream: d.stream, level: 'debug' }).error('state not saved', { err });
  const e = d.json()[0]!.err as Record<string, unknown>;
  t.equal(e.message, err.message);
  t.match(e.stack, /^Error: cannot write[^]*\n\s+at /, 'stack at debug level');

  const c = sink();
  createLogger({ stream: c.stream, level: 'info' }).child({ err }).info('child with an error');
  t.same(c.json()[0]!.err, { message: err.message, code: 'EAPI_STATE_WRITE' }, 'an Error bound in a child too');
});

t.test('text format', async (t) => {
  const s = sink();
  let now = T0;
  const log = createLogger({ format: 'text', level: 'debug', stream: s.stream, now: () => now, base: { node: 'lb1' } });
  log.info('backend registered', { backend: 'web1', note: 'two words', weight: 100, ok: true, none: null, empty: '' });
  now += 1;
  log.warn('quoted', { q: 'say "hi"', eq: 'a=b', obj: { a: 1 }, list: [1, 2] });
  log.debug('multi\nline message', { v: 'x\ny' });
  log.error('failed', { err: Object.assign(new Error('no route'), { code: 'ENETUNREACH' }) });
  log.child({ part: 'api' }).info('child');

  const lines = s.lines();
  t.equal(lines.length, 5, 'one line each');
  t.equal(lines[0], '2026-11-22T10:00:00.000Z info  backend registered node=lb1 backend=web1 note="two words" weight=100 ok=true none=null empty=""');
  t.equal(lines[1], '2026-11-22T10:00:00.001Z warn  quoted node=lb1 q="say \\"hi\\"" eq="a=b" obj="{\\"a\\":1}" list=[1,2]');
  t.equal(lines[2], '2026-11-22T10:00:00.001Z debug multi\\nline message node=lb1 v="x\\ny"');
  t.match(lines[3], /^2026-11-22T10:00:00\.001Z error failed node=lb1 err="no route" err\.code=ENETUNREACH err\.stack="Error: no route\\n {4}at /);
  t.equal(lines[4], '2026-11-22T10:00:00.001Z info  child node=lb1 part=api');

  const q = sink();
  createLogger({ format: 'text', stream: q.stream, now: () => T0 }).error('failed', { err: new Error('no route') });
  t.same(q.lines(), ['2026-11-22T10:00:00.000Z error failed err="no route"'], 'no stack above debug');
});

t.test('default stream is stderr, written synchronously', async (t) => {
  // A child process so the test reads exactly what reached fd 2, including a line logged just
  // before process.exit (no asynchronous buffer to lose it).
  const { spawnSync } = await import('node:child_process');
  const mod = require.resolve('../src/obs/log');
  const code = `const { createLogger } = require(${JSON.stringify(mod)});
    const log = createLogger({});
    log.info('before exit', { n: 1 });
    process.exit(3);`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  t.equal(r.status, 3);
  t.equal(r.stdout, '');
  const rec = JSON.parse(r.stderr.trim()) as Record<string, unknown>;
  t.equal(rec.msg, 'before exit');
  t.equal(rec.n, 1);
  t.equal(rec.level, 'info');
});

t.test('parseLogLevel', async (t) => {
  for (const l of ['debug', 'info', 'warn', 'error'] as const) t.equal(parseLogLevel(l), l);
  t.equal(parseLogLevel('DEBUG'), 'debug');
  t.equal(parseLogLevel(' Info '), 'info');
  t.equal(parseLogLevel('warning'), 'warn');
  for (const bad of ['', 'trace', 'fatal', 'verbose', '30', 'in fo']) t.equal(parseLogLevel(bad), null, JSON.stringify(bad));
});
