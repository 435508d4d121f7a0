// Structured logs for the control side (start-up, API calls, reloads, backend changes).
// Nothing on the packet path logs (STYLE.md 3): it counts.
//
// json (default): one object per line, keys in this order:
//   {"time":"2026-11-22T10:00:00.000Z","level":"info","msg":"backend registered","backend":"web1"}
// text: the same record for people:
//   2026-11-22T10:00:00.000Z info  backend registered backend=web1 note="two words"
//
// Every line is written synchronously (pino.destination with sync: true on fd 2 by default, or
// the caller's stream's write()), so the lines before a crash are on disk or in the pipe.
// An Error among the fields is logged as { message, code?, name?, stack? }: the stack only
// while the level is debug, so a routine failure is one line.

import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger adding `fields` to every line. It shares its parent's level (setting either sets both). */
  child(fields: Fields): Logger;
  /** Lines below this level are skipped. Settable at run time (e.g. a signal turning debug on). */
  level: LogLevel;
}

export interface LoggerOptions {
  /** Default info. */
  level?: LogLevel;
  /** Default json. */
  format?: 'json' | 'text';
  /** Default: fd 2 (stderr), written synchronously. */
  stream?: NodeJS.WritableStream | { write(s: string): unknown };
  /** Fields on every line (e.g. { pid } when several processes share one log). */
  base?: Fields;
  /** Clock (ms since the epoch) for the time key; default Date.now. For tests. */
  now?: () => number;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** Keys the record writes itself; a field of the same name is written as `field_<name>`. */
const RESERVED = new Set(['time', 'level', 'msg']);

/** "debug" | "info" | "warn" (or "warning") | "error", any case; null for anything else. */
export function parseLogLevel(s: string): LogLevel | null {
  const l = s.trim().toLowerCase();
  if (l === 'warning') return 'warn';
  return (LOG_LEVELS as readonly string[]).includes(l) ? (l as LogLevel) : null;
}

interface Shared {
  level: LogLevel;
  write(level: LogLevel, record: Fields): void;
}

export function createLogger(o: LoggerOptions = {}): Logger {
  const now = o.now ?? Date.now;
  const sink: { write(s: string): unknown } = o.stream ?? pino.destination({ dest: 2, sync: true });
  const shared: Shared = {
    level: o.level ?? 'info',
    write: (o.format ?? 'json') === 'text' ? textWriter(sink, now) : jsonWriter(sink, now),
  };
  return new Log(shared, { ...(o.base ?? {}) });
}

class Log implements Logger {
  constructor(private readonly s: Shared, private readonly bound: Fields) {}

  get level(): LogLevel { return this.s.level; }
  set level(l: LogLevel) {
    if (!(l in RANK)) throw new TypeError(`log: unknown level ${JSON.stringify(l)}: use one of ${LOG_LEVELS.join(', ')}`);
    this.s.level = l;
  }

  debug(msg: string, fields?: Fields): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: Fields): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: Fields): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: Fields): void { this.log('error', msg, fields); }

  child(fields: Fields): Logger {
    return new Log(this.s, { ...this.bound, ...fields });
  }

  private log(level: LogLevel, msg: string, fields: Fields | undefined): void {
    if (RANK[level] < RANK[this.s.level]) return;
    const stack = this.s.level === 'debug';
    // Insertion order is output order: level, msg, bound fields, then this line's fields.
    const rec: Fields = { level, msg: String(msg) };
    for (const k in this.bound) put(rec, k, this.bound[k], stack);
    if (fields) for (const k in fields) put(rec, k, fields[k], stack);
    this.s.write(level, rec);
  }
}

function put(rec: Fields, k: string, v: unknown, stack: boolean): void {
  if (v === undefined) return;
  rec[RESERVED.has(k) ? `field_${k}` : k] = v instanceof Error ? errorFields(v, stack) : v;
}

/** Errors as logged, so the text format can tell them from a field that happens to have a message. */
const ERROR_FIELDS = new WeakSet<object>();

function errorFields(e: Error, stack: boolean): Fields {
  const out: Fields = { message: e.message };
  const code = (e as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (e.name && e.name !== 'Error') out.name = e.name;
  if (stack && e.stack) out.stack = e.stack;
  ERROR_FIELDS.add(out);
  return out;
}

/**
 * pino does the JSON: a safe stringify (circular references, non-finite numbers) written in one
 * write() per line. Its own keys are arranged so that time comes first: the level formatter
 * returns nothing, so pino's line starts as just "{", and the timestamp fragment follows it
 * without the usual leading comma; level and msg are the record's first keys (see Log.log).
 * pino's level filtering is left open ("debug"): Log.log filters before building the record.
 */
function jsonWriter(sink: { write(s: string): unknown }, now: () => number): Shared['write'] {
  const p = pino({
    level: 'debug',
    base: null,
    timestamp: () => `"time":"${new Date(now()).toISOString()}"`,
    formatters: { level: () => ({}) },
    // Errors are already plain objects (errorFields); pino's own err serializer would add type and stack.
    serializers: { err: (v: unknown) => v },
  }, sink as pino.DestinationStream);
  return (level, rec) => { p[level](rec); };
}

function textWriter(sink: { write(s: string): unknown }, now: () => number): Shared['write'] {
  return (level, rec) => {
    let line = `${new Date(now()).toISOString()} ${level.padEnd(5)} ${oneLine(String(rec.msg))}`;
    for (const k in rec) {
      if (k === 'level' || k === 'msg') continue;
      const v = rec[k];
      if (typeof v === 'object' && v !== null && ERROR_FIELDS.has(v)) {
        // err="message" err.code=E... err.stack="..." rather than a JSON blob.
        for (const [ek, ev] of Object.entries(v)) line += ` ${ek === 'message' ? k : `${k}.${ek}`}=${textValue(ev)}`;
      } else {
        line += ` ${k}=${textValue(v)}`;
      }
    }
    sink.write(line + '\n');
  };
}

function oneLine(s: string): string {
  return s.replace(/\r?\n/g, '\\n');
}

/** logfmt-style: bare when it is one plain token, else a JSON string. */
function textValue(v: unknown): string {
  if (v === null || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  let s: string;
  if (typeof v === 'string') s = v;
  else {
    try { s = JSON.stringify(v) ?? String(v); } catch { s = '[unserializable]'; }
  }
  return s !== '' && /^[^\s"=\\\x00-\x1f\x7f]+$/.test(s) ? s : JSON.stringify(s);
}
