// The YAML config file: parse, validate, apply defaults.
//
// Every problem is reported at the line and column of the YAML node that caused it, says what
// is wrong and what to write instead, and all problems of a file are reported at once (one
// ConfigError, one problem per line, each also in `.errors`). Bad input of any shape — broken
// YAML, wrong types, random bytes — only ever throws ConfigError (see the fuzz test).
//
// The validator walks the YAML AST (not `toJS()` output) so positions are known, and only
// descends where the schema says: aliases are resolved one node at a time and never
// expanded, so anchor bombs cost nothing.
//
// Control plane only: nothing here runs on the packet path.

import { DEFAULT_BATCH, DEFAULT_SPIN_US } from '../../native-bindings/afpacket';
import { readFileSync } from 'node:fs';
import {
  LineCounter,
  parseDocument,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Document,
  type YAMLError,
} from 'yaml';
import { formatIpv4, formatMac, parseIpv4, parseMac } from '../wire/addr.js';
import { VipgateError } from './errors.js';
import { ICMP_ECHO_DEFAULTS, IcmpSpec, tablesImageBytes } from '../tables/services.js';
import { TABLE_IMAGE_BYTES } from '../shm/banks.js';
import { REGION_DIR } from '../shm/region.js';
import {
  HealthCheck, SparePool, ServiceFailover, SynCheckConfig, EventsConfig, SERVICE_FAILOVER_KEYS,
  parseDefaultHealth, parseBackendHealth, parseSpares, parseServiceFailover, parseSynCheck, parseEvents,
} from './config/health.js';
import {
  ClusterConfig, VipPlacement, VipEntry, KeyInfo, parseCluster, parseVipMapping, resolvePlacements, checkClusterVips, isVipMapping, describeCluster,
} from './config/cluster.js';

// ---------------------------------------------------------------------------------------------
// Types

/** The API token rule, for the config's api.token and VIPGATE_API_TOKEN alike. */
export const TOKEN_RULE = 'must be at least 16 characters without spaces; generate one with: openssl rand -hex 24';
export function tokenOk(tk: string): boolean { return tk.length >= 16 && !/\s/.test(tk); }

export interface BackendConfig {
  name: string;
  /** Share of new flows among a service's active backends, 0..1000 (default 100). */
  weight: number;
  ip: number; // u32, 10.0.1.21 === 0x0a000115
  ipText: string;
  mac: Uint8Array | null; // null: learned from ARP
  macText: string | null;
  /** The health check (the default `health` or its own), or null: never checked, always usable. */
  health: HealthCheck | null;
}

export interface ServiceConfig {
  vip: number;
  vipText: string;
  /** 0 = IP mode (every port of the VIP); 1..65535 = port mode. */
  port: number;
  /** Backend name: for IP mode the `backend` key, for port mode the `active` key. */
  active: string;
  /** Priority order, highest first; [] in IP mode. */
  standby: string[];
  /** Spare pool, preempt, hold-down, on_backend_down (config/health.ts). */
  failover: ServiceFailover;
  /** Line of the service entry in the file, for later error messages. */
  line: number;
}

export interface FlowConfig {
  capacity: number;
  halfOpenTimeoutMs: number;
  establishedTimeoutMs: number;
  closingTimeoutMs: number;
}

export interface NeighbourConfig {
  capacity: number;
  ttlMs: number;
}

export interface Config {
  /** Path as given; '<inline>' for text not read from a file. */
  file: string;
  /** NIC name for live mode; null when not given. */
  interface: string | null;
  /** The one MAC vipgate answers ARP with. null only when parsed with requireMac: false. */
  mac: Uint8Array | null;
  macText: string | null;
  mode: 'dsr' | 'nat';
  vips: number[];
  vipTexts: string[];
  backends: BackendConfig[];
  services: ServiceConfig[];
  flows: FlowConfig;
  neighbours: NeighbourConfig;
  /** nat: the backends' default gateway, an address vipgate answers ARP for (no kernel owns it). */
  natGateway: number | null;
  natGatewayText: string | null;
  announce: AnnounceConfig;
  /** What vipgate does with ICMP echo requests to its VIPs (errors about flows are always carried). */
  icmp: IcmpSpec;
  api: ApiConfig;
  /** Where state changed through the API is kept (null: not persisted). */
  stateFile: string | null;
  /**
   * The directory of the shared-state file (flows, counters, tables: src/shm/region.ts): a tmpfs.
   * /dev/shm by default; a tmpfs mounted with huge=within_size puts the flow table on 2 MiB pages.
   */
  shmDir: string;
  log: { level: 'debug' | 'info' | 'warn' | 'error'; format: 'json' | 'text' };
  /** The default health check (top-level `health`), applied to registered backends too; null: none. */
  health: HealthCheck | null;
  spares: SparePool[];
  /** The SYN-time check, or null (off). */
  synCheck: SynCheckConfig | null;
  events: EventsConfig;
  io: IoConfig;
  /** The cluster of vipgate nodes (issue 11), or null: a single node answering for every VIP. */
  cluster: ClusterConfig | null;
  /** Per VIP (unsigned, like vips), only those with a non-default prefer/placement. */
  vipPlacement: Map<number, VipPlacement>;
}

/** Packet I/O (issue 10): `io: native | pcap`, or a mapping with the native backend's tuning. */
export interface IoConfig {
  /** auto (the key is absent): native where it works, else pcap, with the reason logged. */
  backend: 'auto' | 'native' | 'pcap';
  /** Frames per turn of the event loop at most (native). */
  batch: number;
  /** Keep polling this long after the last frame before sleeping (native), µs; 0 = sleep at once. */
  spinUs: number;
  /**
   * The packet worker's SCHED_FIFO priority (1-99), or 0: an ordinary task at nice -10. Real-time,
   * a frame's wake-up preempts whatever else runs on the worker's CPU (control, other programs).
   */
  rtPriority: number;
}

/** The runtime API: HOST:PORT to listen on; a bearer token (required off loopback). */
export interface ApiConfig {
  listen: string;
  token: string | null;
}

/** Gratuitous ARP for every VIP at start and when a VIP is added: `count` times, `intervalMs`
 *  apart; then every `refreshMs` (0 = no periodic refresh). */
export interface AnnounceConfig {
  count: number;
  intervalMs: number;
  refreshMs: number;
}

export interface ConfigOptions {
  /** Require the top-level `mac` key (default true: replay needs it; live mode may default
   *  it to the NIC's MAC and pass false). */
  requireMac?: boolean;
}

/** Stable error codes: one per class of failure; the message carries the detail. */
export const ConfigErrorCode = {
  /** Not parseable YAML (or not UTF-8, or nested absurdly deep). */
  SYNTAX: 'ECONFIG_SYNTAX',
  /** Well-formed YAML that breaks a rule of the schema. */
  INVALID: 'ECONFIG_INVALID',
  /** The file could not be read. */
  IO: 'ECONFIG_IO',
  /** A bug in the validator itself (never expected; the fuzz test checks it never happens). */
  INTERNAL: 'ECONFIG_INTERNAL',
} as const;
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

/** One problem in a config file. Line and column are 1-based. */
export interface ConfigIssue {
  code: ConfigErrorCode;
  file: string;
  line: number | null;
  column: number | null;
  /** Where in the document, e.g. 'services[1].standby[0]'; '' for the document itself. */
  path: string;
  /** What is wrong and what to do, without the location prefix. */
  message: string;
}

/** How many problems the message lists; `.errors` always holds all of them. */
const MAX_LISTED = 20;

export function formatConfigIssue(i: ConfigIssue): string {
  const where = i.line === null ? i.file : `${i.file}:${i.line}:${i.column ?? 1}`;
  return i.path ? `${where}: ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

/**
 * Bad config. The message lists every problem, one per line, each as
 * `FILE:LINE:COL: path: what is wrong and what to do`; `file`/`line`/`column` are the first
 * problem's; `errors` holds them all.
 */
export class ConfigError extends VipgateError {
  readonly file: string;
  readonly line: number | null;
  readonly column: number | null;
  readonly errors: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    const first = issues[0] ?? {
      code: ConfigErrorCode.INTERNAL,
      file: '<unknown>',
      line: null,
      column: null,
      path: '',
      message: 'ConfigError raised without a problem',
    };
    const lines = issues.slice(0, MAX_LISTED).map(formatConfigIssue);
    if (issues.length > MAX_LISTED) {
      lines.push(`${first.file}: ... and ${issues.length - MAX_LISTED} more problems`);
    }
    super(first.code, lines.length ? lines.join('\n') : formatConfigIssue(first), options);
    this.file = first.file;
    this.line = first.line;
    this.column = first.column;
    this.errors = issues.length ? issues : [first];
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults and bounds

export const CONFIG_DEFAULTS = {
  mode: 'dsr',
  flows: {
    capacity: 65536,
    halfOpenTimeoutMs: 15_000,
    establishedTimeoutMs: 900_000,
    closingTimeoutMs: 30_000,
  },
  neighbours: { capacity: 4096, ttlMs: 300_000 },
} as const;

export const CONFIG_LIMITS = {
  flowCapacity: { min: 1, max: 16_777_216 }, // 2^24 slots of typed arrays is already ~GBs
  neighbourCapacity: { min: 1, max: 1_048_576 },
  /** Any timeout: 1 ms .. 7 days (conntrack's established default is 5 days). */
  durationMs: { min: 1, max: 7 * 86_400_000 },
  port: { min: 1, max: 65535 },
  /** Refuse bigger inputs outright: a real config is a few KiB. */
  maxTextLength: 4 * 1024 * 1024,
  /** Nesting limits checked before the YAML parser sees the text: the parser recurses per
   *  level, and very deep input can exhaust the stack inside V8's regexp compiler, which is
   *  fatal rather than a catchable error. vipgate's schema is at most 4 levels deep. */
  maxFlowDepth: 64,
  maxLinePrefix: 128,
} as const;

const BACKEND_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
// Linux dev_valid_name(): 1..15 bytes (IFNAMSIZ - 1), not "." or "..", no '/', ':' or space.
const IFNAME_RE = /^[^/:\s]{1,15}$/;

const TOP_KEYS = ['interface', 'mac', 'mode', 'vips', 'backends', 'services', 'flows', 'neighbours', 'nat_gateway', 'announce', 'api', 'state_file', 'shm_dir', 'log', 'icmp', 'health', 'spares', 'syn_check', 'events', 'io', 'cluster'] as const;
const ICMP_KEYS = ['echo', 'echo_rate', 'echo_burst'] as const;
const API_KEYS = ['listen', 'token'] as const;
const LOG_KEYS = ['level', 'format'] as const;
const IO_KEYS = ['backend', 'batch', 'spin_us', 'rt_priority'] as const;
const ANNOUNCE_KEYS = ['count', 'interval', 'refresh'] as const;
const BACKEND_KEYS = ['name', 'ip', 'mac', 'weight', 'health'] as const;
const SERVICE_KEYS = ['vip', 'backend', 'port', 'active', 'standby', ...SERVICE_FAILOVER_KEYS] as const;
const FLOW_KEYS = ['capacity', 'half_open_timeout', 'established_timeout', 'closing_timeout'] as const;
const NEIGHBOUR_KEYS = ['capacity', 'ttl'] as const;

// ---------------------------------------------------------------------------------------------
// Entry points

/** Parse and validate config text. Throws ConfigError (listing every problem) and nothing else. */
export function parseConfig(text: string, file: string = '<inline>', opts: ConfigOptions = {}): Config {
  const name = typeof file === 'string' && file !== '' ? file : '<inline>';
  try {
    return parseChecked(text, name, opts);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    // Safety net so callers can rely on "only ConfigError"; the fuzz test asserts it is never hit.
    const msg = e instanceof Error ? e.message : String(e);
    throw new ConfigError(
      [issue(ConfigErrorCode.INTERNAL, name, null, null, '',
        `internal error while checking the config (a vipgate bug; please report it with the file): ${msg}`)],
      { cause: e },
    );
  }
}

/** Read a config file (UTF-8) and parse it. Unreadable file → ConfigError ECONFIG_IO. */
export function loadConfig(path: string, opts: ConfigOptions = {}): Config {
  if (typeof path !== 'string' || path === '') {
    throw new ConfigError([issue(ConfigErrorCode.IO, '<none>', null, null, '',
      'no config file given; pass the path of a YAML config file')]);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ConfigError([issue(ConfigErrorCode.IO, path, null, null, '', ioMessage(e))], { cause: e });
  }
  if (bytes.length > CONFIG_LIMITS.maxTextLength) {
    throw new ConfigError([issue(ConfigErrorCode.INVALID, path, null, null, '',
      `file is ${bytes.length} bytes, over the ${CONFIG_LIMITS.maxTextLength}-byte limit; is this really a vipgate config?`)]);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError([issue(ConfigErrorCode.SYNTAX, path, null, null, '',
      'file is not valid UTF-8 text; save the config as UTF-8')]);
  }
  return parseConfig(text, path, opts);
}

function ioMessage(e: unknown): string {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  switch (code) {
    case 'ENOENT':
      return 'cannot read config file: no such file (ENOENT); check the path';
    case 'EACCES':
    case 'EPERM':
      return `cannot read config file: permission denied (${code}); make it readable by the vipgate user`;
    case 'EISDIR':
      return 'cannot read config file: it is a directory (EISDIR); give the path of the YAML file inside it';
    case 'ENOTDIR':
      return 'cannot read config file: a part of the path is not a directory (ENOTDIR); check the path';
    default: {
      const msg = e instanceof Error ? e.message : String(e);
      return `cannot read config file: ${msg}`;
    }
  }
}

/** What `vipgate run` would use where flags or the environment override the file (control/run-config.ts). */
export interface EffectiveSettings {
  apiListen: string;
  /** Where the API token comes from, or null for none. */
  tokenFrom: string | null;
  stateFile: string | null;
  /** The cluster key as loaded (never the key itself), or absent when not loaded. */
  clusterKey?: KeyInfo | null;
}

/** Human summary for CLI output: every key that matters, with defaults filled in. */
export function describeConfig(c: Config, eff: EffectiveSettings = {
  apiListen: c.api.listen, tokenFrom: c.api.token === null ? null : 'api.token', stateFile: c.stateFile,
}): string {
  const out: string[] = [];
  out.push(
    `config ${c.file}: mode ${c.mode}, mac ${c.macText ?? '(from the NIC; replay needs mac:)'}` +
      (c.interface !== null ? `, interface ${c.interface}` : ', no interface (vipgate run then needs --interface)'),
  );
  out.push(`  ${plural(c.vips.length, 'VIP')}: ${c.vipTexts.join(', ')}`);
  if (c.backends.length) {
    out.push(
      `  ${plural(c.backends.length, 'backend')}: ` +
        c.backends.map((b) => `${b.name} ${b.ipText}${b.macText ? ` (${b.macText})` : ' (mac by ARP)'}`).join(', '),
    );
  } else {
    out.push('  0 backends (register them through the API)');
  }
  out.push(`  ${plural(c.services.length, 'service')}${c.services.length ? ':' : ''}`);
  for (const s of c.services) {
    out.push(
      s.port === 0
        ? `    ${s.vipText} (IP mode) -> ${s.active}`
        : `    ${s.vipText}:${s.port} -> ${s.active}` + (s.standby.length ? `, standby ${s.standby.join(', ')}` : '') +
          (s.failover.spares ? `, spares ${s.failover.spares}` : ''),
    );
  }
  const idle = c.vips.filter((v) => !c.services.some((s) => s.vip === v));
  if (idle.length) out.push(`  no service (ARP only, TCP dropped): ${idle.map(formatIpv4).join(', ')}`);
  const f = c.flows;
  out.push(
    `  flows: capacity ${f.capacity}, timeouts half-open ${formatDuration(f.halfOpenTimeoutMs)}, ` +
      `established ${formatDuration(f.establishedTimeoutMs)}, closing ${formatDuration(f.closingTimeoutMs)}`,
  );
  out.push(`  neighbours: capacity ${c.neighbours.capacity}, ttl ${formatDuration(c.neighbours.ttlMs)}`);
  if (c.mode === 'nat') {
    out.push(c.natGatewayText === null
      ? '  nat gateway: none (the backends must route replies to vipgate\'s MAC some other way)'
      : `  nat gateway: ${c.natGatewayText} (answered by ARP; the backends' default route)`);
  }
  const a = c.announce;
  out.push(`  announce: ${a.count} gratuitous ARP${a.count === 1 ? '' : 's'} per VIP, ${formatDuration(a.intervalMs)} apart, ` +
    (a.refreshMs > 0 ? `then every ${formatDuration(a.refreshMs)}` : 'no periodic refresh'));
  out.push(`  api: http://${eff.apiListen}/v1, ${eff.tokenFrom === null ? 'no token (loopback only)' : `bearer token from ${eff.tokenFrom}`}`);
  out.push(`  state file: ${eff.stateFile ?? 'none (changes made through the API are lost at restart)'}`);
  out.push(`  shared state: in ${c.shmDir}${c.shmDir === REGION_DIR ? ' (the default)' : ''}`);
  out.push(`  log: level ${c.log.level}, format ${c.log.format}`);
  out.push(c.icmp.echo ? `  icmp: echo answered, up to ${c.icmp.echoRate}/s, burst ${c.icmp.echoBurst}` : '  icmp: echo requests dropped (icmp.echo: false)');
  const checked = c.backends.filter((b) => b.health).length;
  if (c.health || checked) {
    const h = c.health;
    out.push(`  health: ${h ? `${h.type}${h.port ? ` :${h.port}` : ''} every ${formatDuration(h.intervalMs)}, timeout ${formatDuration(h.timeoutMs)}, rise ${h.rise}, fall ${h.fall}` : 'no default'}; ${checked} of ${c.backends.length} backends checked`);
  }
  for (const p of c.spares) out.push(`  spare pool ${p.name}${p.exclusive ? ' (exclusive)' : ''}: ${p.members.join(', ')}`);
  const io = c.io;
  if (c.cluster) out.push(...describeCluster(c.cluster, c.vipPlacement, eff.clusterKey ?? null));
  out.push((io.backend === 'pcap' ? '  packet I/O: pcap' : `  packet I/O: ${io.backend === 'auto' ? 'native where it works, else pcap' : 'native'} (batches of up to ${io.batch}, polling ${io.spinUs} µs)`) +
    (io.rtPriority > 0 ? `; the packet worker real-time (SCHED_FIFO ${io.rtPriority})` : ''));
  return out.join('\n');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** 900000 → '15m', 1500 → '1500ms'. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Parse a duration: a number of seconds (15, 0.5) or a string with a unit (500ms, 15s, 5m, 1h).
 * Returns whole milliseconds, or null if the text is not a duration. No range check.
 */
export function parseDuration(v: unknown): number | null {
  const ms = durationMs(v);
  if (ms === null) return null;
  const whole = Math.round(ms);
  // Allow float noise (0.1 * 1000), refuse sub-millisecond precision.
  return Math.abs(whole - ms) > 1e-6 ? null : whole;
}

/** Milliseconds, possibly fractional, or null when `v` is not written as a duration. */
function durationMs(v: unknown): number | null {
  let ms: number;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    ms = v * 1000;
  } else if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(v);
    if (!m) return null;
    const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000;
    ms = Number(m[1]) * unit;
  } else {
    return null;
  }
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

// ---------------------------------------------------------------------------------------------
// Parsing

function issue(
  code: ConfigErrorCode, file: string, line: number | null, column: number | null, path: string, message: string,
): ConfigIssue {
  return { code, file, line, column, path, message };
}

function parseChecked(text: string, file: string, opts: ConfigOptions): Config {
  if (typeof text !== 'string') {
    throw new ConfigError([issue(ConfigErrorCode.INVALID, file, null, null, '',
      `config text must be a string, got ${text === null ? 'null' : typeof text}`)]);
  }
  if (text.length > CONFIG_LIMITS.maxTextLength) {
    throw new ConfigError([issue(ConfigErrorCode.INVALID, file, null, null, '',
      `config is ${text.length} characters, over the ${CONFIG_LIMITS.maxTextLength} limit; is this really a vipgate config?`)]);
  }
  const lc = new LineCounter();
  const deep = findTooDeep(text);
  if (deep) {
    // Count lines ourselves: the parser has not run, so the LineCounter is empty.
    const { line, col } = offsetToLineCol(text, deep.offset);
    throw new ConfigError([issue(ConfigErrorCode.SYNTAX, file, line, col, '', deep.message)]);
  }

  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, strict: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ConfigError([issue(ConfigErrorCode.SYNTAX, file, null, null, '', `cannot parse the YAML: ${msg}`)], { cause: e });
  }

  // Warnings (unknown tags, odd directives) are errors too: a config should mean one thing.
  const yamlProblems: YAMLError[] = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length) {
    const issues = yamlProblems.map((e) => {
      const { line, col } = lc.linePos(Math.max(0, Math.min(e.pos[0], text.length)));
      return issue(ConfigErrorCode.SYNTAX, file, line, col, '', syntaxMessage(e));
    });
    throw new ConfigError(sortIssues(issues));
  }

  const ck = new Checker(file, lc, doc);
  const config = ck.checkDocument(opts.requireMac !== false);
  if (ck.issues.length || config === null) {
    if (!ck.issues.length) ck.fail(null, '', 'config rejected');
    throw new ConfigError(sortIssues(ck.issues));
  }
  return config;
}

function syntaxMessage(e: YAMLError): string {
  // The yaml package may append " at line N, column M" (and an excerpt): we give the location.
  let msg = String(e.message).split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').trim();
  if (!msg) msg = 'invalid YAML';
  const hint: Partial<Record<string, string>> = {
    DUPLICATE_KEY: 'remove or rename the repeated key',
    TAB_AS_INDENT: 'indent with spaces, not tabs',
    BAD_INDENT: 'check the indentation and closing brackets',
    MULTIPLE_DOCS: 'a config is a single YAML document; remove the extra "---" documents',
    TAG_RESOLVE_FAILED: 'remove the !tag; vipgate configs use plain values',
    BAD_ALIAS: 'define the &anchor before using *alias',
  };
  return `YAML syntax error (${e.code}): ${msg}; ${hint[e.code] ?? 'fix the YAML syntax here'}`;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  // Stable: problems found at one spot keep the order they were found in.
  return issues
    .map((v, i) => ({ v, i }))
    .sort((a, b) => (a.v.line ?? 0) - (b.v.line ?? 0) || (a.v.column ?? 0) - (b.v.column ?? 0) || a.i - b.i)
    .map((x) => x.v);
}

function offsetToLineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, col: offset - start + 1 };
}

/**
 * Cheap over-estimate of nesting depth, before the parser runs: bracket depth (ignoring
 * quotes, which only makes it stricter) and the run of indentation/indicator characters at
 * the start of a line (each block level costs at least one of them).
 */
function findTooDeep(text: string): { offset: number; message: string } | null {
  const { maxFlowDepth, maxLinePrefix } = CONFIG_LIMITS;
  let flow = 0;
  let atLineStart = true;
  let prefix = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      atLineStart = true;
      prefix = 0;
      continue;
    }
    if (atLineStart) {
      // space, tab, '-', '?', ':'
      if (c === 32 || c === 9 || c === 45 || c === 63 || c === 58) {
        if (++prefix > maxLinePrefix) {
          return {
            offset: i,
            message: `YAML nested too deeply: more than ${maxLinePrefix} levels of indentation or "- " on one line; a vipgate config needs at most 4`,
          };
        }
      } else {
        atLineStart = false;
      }
    }
    if (c === 91 || c === 123) {
      if (++flow > maxFlowDepth) {
        return {
          offset: i,
          message: `YAML nested too deeply: more than ${maxFlowDepth} open [ or { brackets; a vipgate config needs at most 3`,
        };
      }
    } else if ((c === 93 || c === 125) && flow > 0) {
      flow--;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// The checker: walks the AST, collects issues.

/** A value found under a key (or a list index): the resolved node and where it is. */
interface Entry {
  /** Scalar | YAMLMap | YAMLSeq, or null for a key with no value. Aliases already resolved. */
  node: unknown;
  /** Node to point at when reporting: the value, or the key when there is no value. */
  at: unknown;
  path: string;
}

type Fields<K extends string> = Partial<Record<K, Entry>>;

interface VipSeen {
  ip: number;
  line: number;
  index: number;
}

class Checker {
  readonly issues: ConfigIssue[] = [];

  constructor(
    private readonly file: string,
    private readonly lc: LineCounter,
    private readonly doc: Document.Parsed,
  ) {}

  // --- reporting ---------------------------------------------------------------------------

  fail(node: unknown, path: string, message: string): void {
    const pos = this.pos(node);
    this.issues.push(issue(ConfigErrorCode.INVALID, this.file, pos.line, pos.col, path, message));
  }

  /** 1-based line/column of a node's start; 1:1 when it has no range. */
  pos(node: unknown): { line: number; col: number } {
    const range = (node as { range?: unknown } | null)?.range;
    if (Array.isArray(range) && typeof range[0] === 'number') return this.lc.linePos(range[0]);
    return { line: 1, col: 1 };
  }

  line(node: unknown): number {
    return this.pos(node).line;
  }

  // --- structure ---------------------------------------------------------------------------

  /** Follow an alias to its anchored node. undefined (and reported) if it leads nowhere. */
  resolve(node: unknown, path: string): unknown {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc);
    if (target === undefined || isAlias(target)) {
      this.fail(node, path, `alias *${node.source} refers to no &${node.source} anchor before it; define the anchor first or write the value out`);
      return undefined;
    }
    return target;
  }

  /**
   * Read a mapping's keys; report unknown keys (with a did-you-mean) and return the known ones.
   * null when the node is not a mapping (reported, naming `what`).
   */
  mapping<K extends string>(e: Entry, keys: readonly K[], what: string): Fields<K> | null {
    if (!isMap(e.node)) {
      this.fail(e.at, e.path, `expected ${what}, got ${describe(e.node)}`);
      return null;
    }
    const out: Fields<K> = {};
    for (const pair of e.node.items) {
      if (!isPair(pair)) continue;
      const keyNode = this.resolve(pair.key, e.path);
      const keyText = isScalar(keyNode) && keyNode.value !== null && typeof keyNode.value !== 'object'
        ? String(keyNode.value)
        : null;
      const keyPath = (k: string) => (e.path ? `${e.path}.${k}` : k);
      if (keyText === null || !(keys as readonly string[]).includes(keyText)) {
        const shown = keyText ?? `(${describe(keyNode)})`;
        const guess = keyText === null ? null : didYouMean(keyText, keys);
        this.fail(
          pair.key ?? e.node, keyPath(shown),
          `unknown key${guess ? ` (did you mean "${guess}"?)` : ''}; allowed keys here: ${keys.join(', ')}`,
        );
        continue;
      }
      const p = keyPath(keyText);
      const value = pair.value === null || pair.value === undefined ? null : this.resolve(pair.value, p);
      if (value === undefined) continue; // bad alias, reported
      out[keyText as K] = { node: value, at: pair.value ?? pair.key, path: p };
    }
    return out;
  }

  /** A list's items as entries; null when not a list (reported). */
  list(e: Entry, what: string, example: string): Entry[] | null {
    if (!isSeq(e.node)) {
      this.fail(e.at, e.path, `expected a list of ${what}, got ${describe(e.node)}; write it like ${example}`);
      return null;
    }
    const out: Entry[] = [];
    e.node.items.forEach((item, i) => {
      const p = `${e.path}[${i}]`;
      const node = item === null || item === undefined ? null : this.resolve(item, p);
      if (node === undefined) return;
      out.push({ node, at: item ?? e.node, path: p });
    });
    return out;
  }

  missing(parent: unknown, path: string, what: string): void {
    // A key whose value was a broken alias was already reported under the same path.
    if (this.issues.some((i) => i.path === path)) return;
    this.fail(parent, path, `missing; ${what}`);
  }

  // --- scalars -----------------------------------------------------------------------------

  /** The text of a scalar (numbers as written in the file); undefined (reported) otherwise. */
  text(e: Entry, expected: string): string | undefined {
    const t = scalarText(e.node);
    if (t === null) {
      this.fail(e.at, e.path, `expected ${expected}, got ${describe(e.node)}`);
      return undefined;
    }
    return t;
  }

  integer(e: Entry, min: number, max: number, what: string): number | undefined {
    const n = e.node;
    if (!isScalar(n) || typeof n.value !== 'number') {
      const quoted = isScalar(n) && typeof n.value === 'string' && /^\s*-?\d+\s*$/.test(n.value);
      this.fail(e.at, e.path,
        `expected ${what} as an integer ${min}..${max}, got ${describe(n)}${quoted ? '; remove the quotes' : ''}`);
      return undefined;
    }
    const v = n.value;
    if (!Number.isInteger(v)) {
      this.fail(e.at, e.path, `${scalarText(n)} is not a whole number; ${what} must be an integer ${min}..${max}`);
      return undefined;
    }
    if (v < min || v > max) {
      this.fail(e.at, e.path, `${scalarText(n)} is out of range; ${what} must be ${min}..${max}`);
      return undefined;
    }
    return v;
  }

  duration(e: Entry, fallbackMs: number): number {
    const n = e.node;
    const v = isScalar(n) ? n.value : undefined;
    const ms = typeof v === 'number' || typeof v === 'string' ? durationMs(v) : null;
    const { min, max } = CONFIG_LIMITS.durationMs;
    if (ms === null) {
      this.fail(e.at, e.path,
        `${describe(n)} is not a duration; write a number of seconds (15) or a string with a unit: 500ms, 15s, 5m, 1h`);
      return fallbackMs;
    }
    if (ms < min || ms > max) {
      this.fail(e.at, e.path,
        `${scalarText(n)} is out of range; a timeout must be between ${formatDuration(min)} and ${formatDuration(max)} (${max / 1000}s)`);
      return fallbackMs;
    }
    const whole = parseDuration(v);
    if (whole === null) {
      this.fail(e.at, e.path, `${scalarText(n)} is not a whole number of milliseconds; round it, e.g. 1500ms or 1.5s`);
      return fallbackMs;
    }
    return whole;
  }

  ipv4(e: Entry): { ip: number; text: string } | undefined {
    const t = this.text(e, 'an IPv4 address like 10.0.0.100');
    if (t === undefined) return undefined;
    const ip = parseIpv4(t);
    if (ip === null) {
      this.fail(e.at, e.path, `${JSON.stringify(t)} is not an IPv4 address (expected dotted quad like 10.0.0.100)`);
      return undefined;
    }
    return { ip, text: formatIpv4(ip) };
  }

  /** A MAC that can be a frame's source or unicast destination. */
  mac(e: Entry, example: string): { mac: Uint8Array; text: string } | undefined {
    const t = this.text(e, `a MAC address like "${example}"`);
    if (t === undefined) return undefined;
    const mac = parseMac(t);
    if (mac === null) {
      this.fail(e.at, e.path, `${JSON.stringify(t)} is not a MAC address (expected six hex bytes like "${example}")`);
      return undefined;
    }
    const text = formatMac(mac);
    if (mac.every((b) => b === 0)) {
      this.fail(e.at, e.path, `${text} is the all-zero MAC; give a real unicast MAC like "${example}"`);
      return undefined;
    }
    if ((mac[0]! & 1) !== 0) {
      this.fail(e.at, e.path,
        `${text} is a group (multicast/broadcast) MAC: the lowest bit of the first byte is set; use a unicast MAC like "${example}"`);
      return undefined;
    }
    return { mac, text };
  }

  // --- the document ------------------------------------------------------------------------

  checkDocument(requireMac: boolean): Config | null {
    const root = this.resolve(this.doc.contents, '');
    if (root === undefined) return null;
    const top: Entry = { node: root, at: root, path: '' };
    if (root === null || (isScalar(root) && root.value === null)) {
      this.fail(root, '', 'the config is empty; it needs at least mac:, vips: and usually backends: and services: (see scenarios/configs/replay-dsr.yaml)');
      return null;
    }
    const f = this.mapping(top, TOP_KEYS, 'a mapping of keys at the top level (mac:, vips:, backends:, services:, ...)');
    if (f === null) return null;

    // interface
    let iface: string | null = null;
    if (f.interface) {
      const t = this.text(f.interface, 'a network interface name like eth0');
      if (t !== undefined) {
        if (!IFNAME_RE.test(t) || t === '.' || t === '..') {
          this.fail(f.interface.at, f.interface.path,
            `${JSON.stringify(t)} is not a valid Linux interface name (1-15 characters, no "/", ":" or spaces), e.g. eth0`);
        } else {
          iface = t;
        }
      }
    }

    // mac
    let mac: { mac: Uint8Array; text: string } | undefined;
    if (f.mac) {
      mac = this.mac(f.mac, '02:00:5e:00:00:01');
    } else if (requireMac) {
      this.missing(root, 'mac', 'add the MAC vipgate answers ARP with, e.g. mac: "02:00:5e:00:00:01"');
    }

    // mode
    let mode: 'dsr' | 'nat' = CONFIG_DEFAULTS.mode;
    if (f.mode) {
      const t = this.text(f.mode, 'dsr or nat');
      if (t !== undefined) {
        if (t === 'dsr' || t === 'nat') mode = t;
        else this.fail(f.mode.at, f.mode.path, `${JSON.stringify(t)} is not a forwarding mode; use dsr (rewrite MAC only) or nat (rewrite IP)`);
      }
    }

    // vips
    const vips: VipSeen[] = [];
    /** Every address written in vips (even rejected ones), to avoid follow-on errors. */
    const vipsWritten = new Set<number>();
    /** vips is missing, not a list, or has an entry that is not an address: then a service's
     *  vip cannot be judged, and "not one of vips" would only repeat the first error. */
    let vipsBroken = false;
    const vipEntries: VipEntry[] = [];
    if (!f.vips) {
      vipsBroken = true;
      this.missing(root, 'vips', 'list the virtual IPs vipgate answers ARP for, e.g. vips: ["10.0.0.100"]');
    } else {
      const items = this.list(f.vips, 'IPv4 addresses', 'vips: ["10.0.0.100", "10.0.0.101"]');
      if (items !== null && items.length === 0) {
        this.fail(f.vips.at, f.vips.path, 'the list is empty; list at least one virtual IP, e.g. vips: ["10.0.0.100"]');
      }
      if (items === null) vipsBroken = true;
      items?.forEach((item, index) => {
        // An entry is an address, or { ip, prefer?, placement? } (issue 11, config/cluster.ts).
        const mapped = isVipMapping(item) ? parseVipMapping(this, item) : null;
        const a = mapped === null ? this.ipv4(item) : mapped;
        if (!a) {
          vipsBroken = true;
          return;
        }
        if (mapped) vipEntries.push(mapped);
        vipsWritten.add(a.ip);
        const why = unusableAddress(a.ip);
        if (why) {
          this.fail(item.at, item.path, `${a.text} ${why}; a VIP must be a unicast address clients can reach, like 10.0.0.100`);
          return;
        }
        const first = vips.find((v) => v.ip === a.ip);
        if (first) {
          this.fail(item.at, item.path, `${a.text} is listed twice (first as vips[${first.index}] on line ${first.line}); remove one`);
          return;
        }
        vips.push({ ip: a.ip, line: this.line(item.at), index });
      });
    }

    // health: the default check, merged under each backend's own
    const defaultHealth = parseDefaultHealth(this, f.health);

    // backends
    const backends: BackendConfig[] = [];
    /** Every name written (even invalid or duplicate), so services do not pile on errors. */
    const namesWritten = new Set<string>();
    /** backends is not a list, or has an entry that is not a mapping or has no readable name. */
    let backendsBroken = false;
    if (f.backends) {
      const items = this.list(f.backends, 'backends', 'backends: [{ name: web1, ip: 10.0.1.21 }]');
      if (items === null) backendsBroken = true;
      const byName = new Map<string, { index: number; line: number }>();
      const byIp = new Map<number, { index: number; line: number }>();
      items?.forEach((item, index) => {
        const b = this.mapping(item, BACKEND_KEYS, 'a backend mapping like { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }');
        if (b === null) {
          backendsBroken = true;
          return;
        }
        let ok = true;
        let name: string | undefined;
        if (!b.name) {
          this.missing(item.node, `${item.path}.name`, 'give the backend a name, e.g. name: web1');
          backendsBroken = true;
          ok = false;
        } else {
          name = this.text(b.name, 'a backend name like web1');
          if (name !== undefined) {
            namesWritten.add(name);
            if (!BACKEND_NAME_RE.test(name)) {
              this.fail(b.name.at, b.name.path, `${JSON.stringify(name)} is not a valid backend name; use 1-64 characters from A-Z a-z 0-9 _ . -`);
              ok = false;
            } else {
              const dup = byName.get(name);
              if (dup) {
                this.fail(b.name.at, b.name.path, `${JSON.stringify(name)} is already the name of backends[${dup.index}] (line ${dup.line}); backend names must be unique`);
                ok = false;
              } else {
                byName.set(name, { index, line: this.line(item.at) });
              }
            }
          } else {
            backendsBroken = true;
            ok = false;
          }
        }
        let ip: { ip: number; text: string } | undefined;
        if (!b.ip) {
          this.missing(item.node, `${item.path}.ip`, 'give the backend\'s real IPv4 address, e.g. ip: 10.0.1.21');
          ok = false;
        } else {
          ip = this.ipv4(b.ip);
          if (!ip) ok = false;
          else {
            const why = unusableAddress(ip.ip);
            const dup = byIp.get(ip.ip);
            const vip = vips.find((v) => v.ip === ip!.ip);
            if (why) {
              this.fail(b.ip.at, b.ip.path, `${ip.text} ${why}; a backend IP must be the unicast address of a real server`);
              ok = false;
            } else if (vip) {
              this.fail(b.ip.at, b.ip.path, `${ip.text} is also a VIP (vips[${vip.index}], line ${vip.line}); a backend must have its own real address, not a VIP`);
              ok = false;
            } else if (dup) {
              this.fail(b.ip.at, b.ip.path, `${ip.text} is already the address of backends[${dup.index}] (line ${dup.line}); each backend needs its own IP`);
              ok = false;
            } else {
              byIp.set(ip.ip, { index, line: this.line(item.at) });
            }
          }
        }
        let bmac: { mac: Uint8Array; text: string } | undefined;
        if (b.mac) {
          bmac = this.mac(b.mac, '02:00:00:00:01:21');
          if (!bmac) ok = false;
          else if (mac && bmac.text === mac.text) {
            this.fail(b.mac.at, b.mac.path, `${bmac.text} is vipgate's own mac (line ${this.line(f.mac!.at)}); give the backend's real MAC or leave mac out to learn it by ARP`);
            ok = false;
          }
        }
        let weight = 100;
        if (b.weight) {
          const w = this.integer(b.weight, 0, 1000, 'weight (share of new flows among active backends)');
          if (w === undefined) ok = false; else weight = w;
        }
        const before = this.issues.length;
        const health = parseBackendHealth(this, b.health, defaultHealth);
        if (this.issues.length > before) ok = false;
        if (ok && name !== undefined && ip) {
          backends.push({ name, weight, ip: ip.ip, ipText: ip.text, mac: bmac?.mac ?? null, macText: bmac?.text ?? null, health });
        }
      });
    }
    const backendNames = new Set(backends.map((b) => b.name));
    const knownNames = backends.length ? backends.map((b) => b.name).join(', ') : 'none';
    const sparesBefore = this.issues.length;
    const spares = parseSpares(this, f.spares, backendNames, namesWritten);
    const sparesBroken = this.issues.length > sparesBefore;

    // services
    //
    // A VIP may have one IP-mode service (all ports) and any number of port-mode services at
    // the same time: a SYN to a port that has a port-mode service goes there ("port mode wins
    // for its port"); every other port of the VIP goes to the IP-mode backend. A VIP with no
    // service at all is fine: vipgate answers ARP for it and drops (and counts) its TCP.
    const services: ServiceConfig[] = [];
    if (f.services) {
      const items = this.list(f.services, 'services', 'services: [{ vip: 10.0.0.100, backend: web1 }]');
      const byKey = new Map<number, { index: number; line: number }>();
      items?.forEach((item, index) => {
        const s = this.mapping(item, SERVICE_KEYS,
          'a service mapping: { vip: 10.0.0.100, backend: web1 } (IP mode) or { vip: 10.0.0.101, port: 80, active: web1, standby: [web2] } (port mode)');
        if (s === null) return;
        const line = this.line(item.at);
        let ok = true;

        // vip
        let vip: { ip: number; text: string } | undefined;
        if (!s.vip) {
          this.missing(item.node, `${item.path}.vip`, 'say which VIP this service is for, e.g. vip: 10.0.0.100');
          ok = false;
        } else {
          vip = this.ipv4(s.vip);
          if (!vip) ok = false;
          else if (!vips.some((v) => v.ip === vip!.ip)) {
            if (!vipsWritten.has(vip.ip) && !vipsBroken) {
              this.fail(s.vip.at, s.vip.path,
                `${vip.text} is not one of vips (${vips.map((v) => formatIpv4(v.ip)).join(', ') || 'none'}); add it to vips or fix the address`);
            }
            ok = false;
          }
        }

        // The mode follows `port`; without it, `backend` means IP mode and active/standby
        // alone mean port mode with the port forgotten.
        const portMode = s.port !== undefined || (s.backend === undefined && (s.active !== undefined || s.standby !== undefined));
        let port = 0;
        let active: string | undefined;
        let standby: string[] = [];
        const backendName = (e: Entry): string | undefined => {
          const t = this.text(e, 'a backend name like web1');
          if (t === undefined) return undefined;
          if (!backendNames.has(t)) {
            if (!namesWritten.has(t) && !backendsBroken) {
              this.fail(e.at, e.path, `unknown backend ${JSON.stringify(t)} (defined backends: ${knownNames}); add it under backends or fix the name`);
            }
            return undefined;
          }
          return t;
        };

        if (!portMode) {
          // IP mode: every port of the VIP goes to one backend.
          if (!s.backend) {
            this.missing(item.node, `${item.path}.backend`,
              'an IP-mode service needs backend: NAME; for port mode give port:, active: and optionally standby:');
            ok = false;
          } else {
            active = backendName(s.backend);
            if (active === undefined) ok = false;
          }
          for (const extra of [s.active, s.standby]) {
            if (!extra) continue;
            const key = extra.path.slice(extra.path.lastIndexOf('.') + 1);
            this.fail(extra.at, extra.path,
              `${key} only applies to port mode; remove it for this IP-mode service (backend:), or add port: and name the backend in active: instead`);
            ok = false;
          }
        } else {
          if (s.backend) {
            this.fail(s.backend.at, s.backend.path,
              'backend is for IP-mode services (no port); this service has a port, so name the backend in active: (or drop port for IP mode)');
            ok = false;
          }
          if (!s.port) {
            this.missing(item.node, `${item.path}.port`, 'active/standby need a port (port mode), e.g. port: 80; for IP mode use backend: NAME instead');
            ok = false;
          } else if (isScalar(s.port.node) && s.port.node.value === 0) {
            this.fail(s.port.at, s.port.path,
              'port 0 is not a port; port must be 1..65535 (for an IP-mode service covering all ports, leave port out and use backend:)');
            ok = false;
          } else {
            const p = this.integer(s.port, CONFIG_LIMITS.port.min, CONFIG_LIMITS.port.max, 'port');
            if (p === undefined) ok = false;
            else port = p;
          }
          if (!s.active) {
            this.missing(item.node, `${item.path}.active`, 'a port-mode service needs active: NAME (the backend that takes new connections)');
            ok = false;
          } else {
            active = backendName(s.active);
            if (active === undefined) ok = false;
          }
          if (s.standby) {
            const list = this.list(s.standby, 'backend names', 'standby: [web2, web3]');
            if (list === null) ok = false;
            const seen = new Map<string, number>();
            list?.forEach((e, i) => {
              const n = backendName(e);
              if (n === undefined) {
                ok = false;
                return;
              }
              if (active !== undefined && n === active) {
                this.fail(e.at, e.path, `${JSON.stringify(n)} is the active backend; a standby must be a different backend`);
                ok = false;
                return;
              }
              const prev = seen.get(n);
              if (prev !== undefined) {
                this.fail(e.at, e.path, `${JSON.stringify(n)} is listed twice (also standby[${prev}]); list each standby once, highest priority first`);
                ok = false;
                return;
              }
              seen.set(n, i);
              standby.push(n);
            });
          }
        }

        if (vip && (portMode ? port !== 0 : s.backend !== undefined)) {
          // Key (vip, port); port 0 is the IP-mode service of the VIP. 2^32 * 65536 < 2^53.
          const key = vip.ip * 65536 + port;
          const dup = byKey.get(key);
          if (dup) {
            const at = portMode ? s.port! : s.vip!;
            this.fail(at.at, item.path, portMode
              ? `${vip.text}:${port} already has a service (services[${dup.index}], line ${dup.line}); keep one service per VIP and port, with standby: for failover`
              : `${vip.text} already has an IP-mode service (services[${dup.index}], line ${dup.line}); a VIP has one IP-mode backend; for failover use port mode with active/standby`);
            ok = false;
          } else {
            byKey.set(key, { index, line });
          }
        }

        const failover = parseServiceFailover(this, s, spares, sparesBroken);
        if (failover === null) ok = false;
        if (ok && vip && active !== undefined && failover) {
          services.push({ vip: vip.ip, vipText: vip.text, port, active, standby: portMode ? standby : [], line, failover });
        }
      });
    }

    // flows
    const flows: FlowConfig = { ...CONFIG_DEFAULTS.flows };
    if (f.flows) {
      const m = this.mapping(f.flows, FLOW_KEYS, 'a mapping like { capacity: 65536, half_open_timeout: 15s }');
      if (m) {
        const { min, max } = CONFIG_LIMITS.flowCapacity;
        if (m.capacity) flows.capacity = this.integer(m.capacity, min, max, 'flows.capacity (flow table slots)') ?? flows.capacity;
        if (m.half_open_timeout) flows.halfOpenTimeoutMs = this.duration(m.half_open_timeout, flows.halfOpenTimeoutMs);
        if (m.established_timeout) flows.establishedTimeoutMs = this.duration(m.established_timeout, flows.establishedTimeoutMs);
        if (m.closing_timeout) flows.closingTimeoutMs = this.duration(m.closing_timeout, flows.closingTimeoutMs);
      }
    }

    // neighbours
    const neighbours: NeighbourConfig = { ...CONFIG_DEFAULTS.neighbours };
    if (f.neighbours) {
      const m = this.mapping(f.neighbours, NEIGHBOUR_KEYS, 'a mapping like { capacity: 4096, ttl: 300s }');
      if (m) {
        const { min, max } = CONFIG_LIMITS.neighbourCapacity;
        if (m.capacity) neighbours.capacity = this.integer(m.capacity, min, max, 'neighbours.capacity (ARP table entries)') ?? neighbours.capacity;
        if (m.ttl) neighbours.ttlMs = this.duration(m.ttl, neighbours.ttlMs);
      }
    }

    // nat_gateway: the address nat backends route through (vipgate answers ARP for it)
    let natGateway: { ip: number; text: string } | null = null;
    if (f.nat_gateway) {
      const a = this.ipv4(f.nat_gateway);
      if (a) {
        const why = unusableAddress(a.ip);
        if (mode !== 'nat') {
          this.fail(f.nat_gateway.at, f.nat_gateway.path, 'nat_gateway only applies to mode: nat (dsr backends answer clients directly); remove it or set mode: nat');
        } else if (why) {
          this.fail(f.nat_gateway.at, f.nat_gateway.path, `${a.text} ${why}; use the address the backends have as their default gateway, e.g. 10.0.1.1`);
        } else if (vipsWritten.has(a.ip) || backends.some((b) => b.ip === a.ip)) {
          this.fail(f.nat_gateway.at, f.nat_gateway.path, `${a.text} is already a VIP or a backend; the gateway needs an address of its own on the backends' subnet`);
        } else {
          natGateway = a;
        }
      }
    }

    // announce
    const announce: AnnounceConfig = { count: 3, intervalMs: 1000, refreshMs: 0 };
    if (f.announce) {
      const m = this.mapping(f.announce, ANNOUNCE_KEYS, 'a mapping like { count: 3, interval: 1s, refresh: 60s }');
      if (m) {
        if (m.count) announce.count = this.integer(m.count, 1, 100, 'announce.count (gratuitous ARPs sent per VIP at start)') ?? announce.count;
        if (m.interval) announce.intervalMs = this.duration(m.interval, announce.intervalMs);
        if (m.refresh) announce.refreshMs = this.duration(m.refresh, 0);
      }
    }

    // icmp: echo replies on/off and their token bucket (replies per second, burst)
    const icmp: IcmpSpec = { ...ICMP_ECHO_DEFAULTS };
    if (f.icmp) {
      const m = this.mapping(f.icmp, ICMP_KEYS, 'a mapping like { echo: true, echo_rate: 1000/s, echo_burst: 50 }');
      if (m) {
        if (m.echo) {
          const n = m.echo.node;
          if (isScalar(n) && typeof n.value === 'boolean') icmp.echo = n.value;
          else this.fail(m.echo.at, m.echo.path, `expected true (vipgate answers ping to its VIPs) or false (it drops echo requests), got ${describe(n)}`);
        }
        if (m.echo_rate) {
          // "1000/s" reads as what it is; a plain number means the same.
          const n = m.echo_rate.node;
          const perS = isScalar(n) && typeof n.value === 'string' ? /^\s*(\d+)\s*\/\s*s\s*$/.exec(n.value) : null;
          if (perS) {
            const v = Number(perS[1]);
            if (v >= 1 && v <= 1_000_000) icmp.echoRate = v;
            else this.fail(m.echo_rate.at, m.echo_rate.path, `${perS[1]}/s is out of range; icmp.echo_rate must be 1/s..1000000/s (echo off: icmp.echo: false)`);
          } else {
            icmp.echoRate = this.integer(m.echo_rate, 1, 1_000_000, 'icmp.echo_rate (echo replies per second, e.g. 1000 or "1000/s")') ?? icmp.echoRate;
          }
        }
        if (m.echo_burst) icmp.echoBurst = this.integer(m.echo_burst, 1, 1_000_000, 'icmp.echo_burst (echo replies sent back to back before echo_rate applies)') ?? icmp.echoBurst;
      }
    }

    // api
    const api: ApiConfig = { listen: '127.0.0.1:9180', token: null };
    if (f.api) {
      const m = this.mapping(f.api, API_KEYS, 'a mapping like { listen: 127.0.0.1:9180, token: "..." }');
      if (m) {
        if (m.listen) {
          const l = this.text(m.listen, 'HOST:PORT like 127.0.0.1:9180');
          if (l !== undefined) {
            if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(l) || Number(l.slice(l.lastIndexOf(':') + 1)) > 65535) {
              this.fail(m.listen.at, m.listen.path, `${JSON.stringify(l)} is not HOST:PORT; write e.g. 127.0.0.1:9180 (loopback, the default) or 0.0.0.0:9180 (then a token is required)`);
            } else api.listen = l;
          }
        }
        if (m.token) {
          const tk = this.text(m.token, 'a token string');
          if (tk !== undefined) {
            if (!tokenOk(tk)) this.fail(m.token.at, m.token.path, `the token ${TOKEN_RULE}`);
            else api.token = tk;
          }
        }
      }
    }
    let stateFile: string | null = null;
    if (f.state_file) {
      const sf = this.text(f.state_file, 'a file path like /var/lib/vipgate/state.json');
      if (sf !== undefined) {
        if (sf === '' || sf.endsWith('/')) this.fail(f.state_file.at, f.state_file.path, 'state_file must be a file path like /var/lib/vipgate/state.json');
        else stateFile = sf;
      }
    }
    let shmDir = REGION_DIR;
    if (f.shm_dir) {
      const d = this.text(f.shm_dir, 'a directory on a tmpfs like /dev/shm');
      if (d !== undefined) {
        if (!d.startsWith('/')) this.fail(f.shm_dir.at, f.shm_dir.path, `shm_dir must be an absolute directory path on a tmpfs, like ${REGION_DIR} or /run/vipgate/shm`);
        else shmDir = d.replace(/\/+$/, '') || '/';
      }
    }
    const log: Config['log'] = { level: 'info', format: 'json' };
    if (f.log) {
      const m = this.mapping(f.log, LOG_KEYS, 'a mapping like { level: info, format: json }');
      if (m) {
        if (m.level) {
          const l = this.text(m.level, 'debug, info, warn or error');
          if (l === 'debug' || l === 'info' || l === 'warn' || l === 'error') log.level = l;
          else if (l !== undefined) this.fail(m.level.at, m.level.path, `${JSON.stringify(l)} is not a log level; use debug, info, warn or error`);
        }
        if (m.format) {
          const fm = this.text(m.format, 'json or text');
          if (fm === 'json' || fm === 'text') log.format = fm;
          else if (fm !== undefined) this.fail(m.format.at, m.format.path, `${JSON.stringify(fm)} is not a log format; use json (one object per line) or text`);
        }
      }
    }
    // io: native | pcap, or { backend, batch, spin_us, rt_priority }.
    const io: IoConfig = { backend: 'auto', batch: DEFAULT_BATCH, spinUs: DEFAULT_SPIN_US, rtPriority: 0 };
    if (f.io) {
      const backend = (e: Entry): void => {
        const b = this.text(e, 'native or pcap');
        if (b === 'native' || b === 'pcap') io.backend = b;
        else if (b !== undefined) this.fail(e.at, e.path, `${JSON.stringify(b)} is not a packet I/O backend; use native (AF_PACKET ring, the default where it works) or pcap (libpcap, portable)`);
      };
      if (isMap(f.io.node)) {
        const m = this.mapping(f.io, IO_KEYS, 'a mapping like { backend: native, batch: 256, spin_us: 200 }');
        if (m?.backend) backend(m.backend);
        if (m?.batch) io.batch = this.integer(m.batch, 1, 4096, 'io.batch (frames per turn of the event loop)') ?? io.batch;
        if (m?.spin_us) io.spinUs = this.integer(m.spin_us, 0, 1_000_000, 'io.spin_us (µs of polling after the last frame; 0 = sleep at once)') ?? io.spinUs;
        if (m?.rt_priority) {
          io.rtPriority = this.integer(m.rt_priority, 0, 99, 'io.rt_priority (the packet worker\'s SCHED_FIFO priority, 1-99; 0 = off)') ?? 0;
          // A real-time task that polls never sleeps while a stream trickles in, and the kernel
          // throttles one that runs 95 % of a second: 50 ms a second with nothing forwarded.
          if (io.rtPriority > 0 && !m.spin_us) io.spinUs = 0;
          else if (io.rtPriority > 0 && io.spinUs > 0) {
            this.fail(m.spin_us!.at, m.spin_us!.path, `io.spin_us ${io.spinUs} with io.rt_priority: a real-time worker that polls after each frame never sleeps while a stream trickles in, and the kernel then throttles it (50 ms a second with nothing forwarded); use spin_us: 0 (the default with rt_priority)`);
          }
        }
      } else {
        backend(f.io);
      }
    }

    // cluster: the nodes' own addresses must be none vipgate answers for (those move).
    const taken = new Map<number, string>();
    for (const v of vipsWritten) taken.set(v, 'a VIP');
    for (const b of backends) taken.set(b.ip, `the address of backend ${b.name}`);
    if (natGateway) taken.set(natGateway.ip, 'the nat_gateway');
    const cluster = parseCluster(this, f.cluster, taken, unusableAddress);
    const vipPlacement = resolvePlacements(this, vipEntries, cluster, f.cluster !== undefined);
    if (cluster && f.vips) checkClusterVips(this, f.vips, vips.length + (natGateway ? 1 : 0));

    const synCheck = parseSynCheck(this, f.syn_check);
    const events = parseEvents(this, f.events);

    // The packet worker reads the tables from a fixed-size bank in shared memory (src/shm/banks.ts).
    if (!this.issues.length && f.services) {
      const pool = (s: ServiceConfig) => spares.find((p) => p.name === s.failover.spares)?.members.length ?? 0;
      const need = tablesImageBytes({
        vips: vips.length, services: services.length, backendSlots: backends.length,
        maxMembers: services.reduce((m, s) => Math.max(m, 1 + s.standby.length + pool(s)), 0),
      });
      if (need > TABLE_IMAGE_BYTES) {
        this.fail(f.services.at, 'services', `${services.length} services over ${vips.length} VIP${vips.length === 1 ? '' : 's'} need tables of ${need} bytes; ` +
          `a table bank holds ${TABLE_IMAGE_BYTES} (about 3,000 services of up to 64 members each): split them over several vipgate instances`);
      }
    }

    if (this.issues.length) return null;
    return {
      health: defaultHealth,
      spares,
      synCheck,
      events,
      io,
      cluster,
      vipPlacement,
      api,
      stateFile,
      shmDir,
      log,
      natGateway: natGateway?.ip ?? null,
      natGatewayText: natGateway?.text ?? null,
      announce,
      icmp,
      file: this.file,
      interface: iface,
      mac: mac?.mac ?? null,
      macText: mac?.text ?? null,
      mode,
      vips: vips.map((v) => v.ip),
      vipTexts: vips.map((v) => formatIpv4(v.ip)),
      backends,
      services,
      flows,
      neighbours,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Why an address cannot be a VIP or a backend, or null if it can. */
/** Why an address cannot be a VIP or a backend (unspecified, loopback, multicast, broadcast), or null. */
export function unusableAddress(ip: number): string | null {
  const a = ip >>> 24;
  if (ip === 0) return 'is the unspecified address';
  if (a === 0) return 'is in 0.0.0.0/8 ("this network", RFC 1122 3.2.1.3)';
  if (a === 127) return 'is a loopback address (127.0.0.0/8)';
  if (a >= 224 && a < 240) return 'is a multicast address (224.0.0.0/4)';
  if (ip === 0xffffffff) return 'is the limited broadcast address';
  return null;
}

/** A scalar's text as written (so 10.0 stays "10.0"), or null for non-scalars and null. */
function scalarText(node: unknown): string | null {
  if (!isScalar(node)) return null;
  const v = node.value;
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') {
    return typeof node.source === 'string' && node.source !== '' ? node.source : String(v);
  }
  return null; // !!binary and other typed scalars
}

/** How a node looks, for "expected X, got Y". */
function describe(node: unknown): string {
  if (node === null || node === undefined) return 'no value';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'no value';
    if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
    if (typeof v === 'number' || typeof v === 'bigint') return `the number ${scalarText(node)}`;
    if (typeof v === 'boolean') return `the boolean ${scalarText(node)}`;
    return 'a tagged value';
  }
  return 'something else';
}

/** Closest allowed key within a small edit distance (catches `servics`, `neighbors`, `MAC`). */
function didYouMean(word: string, options: readonly string[]): string | null {
  const w = word.toLowerCase();
  let best: string | null = null;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(w, o);
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  const limit = Math.max(1, Math.floor(w.length / 3));
  return best !== null && bestD <= limit && word.length <= 100 ? best : null;
}

function editDistance(a: string, b: string): number {
  if (a.length > 100) return Infinity;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}
