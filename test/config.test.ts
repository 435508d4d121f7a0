// Config parsing and validation: a fixture table of (description, YAML, expected code / line /
// column / message) for every rule, the happy path with defaults, durations, the example
// files, file I/O errors, and a seeded fuzz run asserting that nothing but ConfigError escapes.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FAILOVER_DEFAULTS, EVENTS_DEFAULTS } from '../src/control/config/health';
import { stringify as yamlStringify } from 'yaml';
import {
  CONFIG_DEFAULTS,
  ConfigError,
  ConfigErrorCode,
  describeConfig,
  formatDuration,
  loadConfig,
  parseConfig,
  parseDuration,
  type Config,
  type ConfigIssue,
} from '../src/control/config.js';
import { VipgateError, isVipgateError } from '../src/control/errors.js';
import { mulberry32 } from './helpers/prng';

// Compiled to dist/test/config.test.js: the repository root is two levels up.
const repoRoot = path.resolve(__dirname, '..', '..');
const configsDir = path.join(repoRoot, 'scenarios', 'configs');

const mac = (...b: number[]) => new Uint8Array(b);

/** The schema example from the issue, as written in configs today. */
const SCHEMA_EXAMPLE = `mac: "02:00:5e:00:00:01"     # the one MAC vipgate answers with
mode: dsr                     # dsr | nat  (default dsr)
vips: ["10.0.0.100", "10.0.0.101"]
backends:
  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }
  - { name: web2, ip: 10.0.1.22, mac: "02:00:00:00:01:22" }
services:
  - { vip: 10.0.0.100, backend: web1 }                            # IP mode
  - { vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }  # port mode
`;

function expectedExample(file: string, mode: 'dsr' | 'nat'): Config {
  return {
    file,
    interface: null,
    mac: mac(0x02, 0x00, 0x5e, 0x00, 0x00, 0x01),
    macText: '02:00:5e:00:00:01',
    mode,
    vips: [0x0a000064, 0x0a000065],
    vipTexts: ['10.0.0.100', '10.0.0.101'],
    backends: [
      { name: 'web1', weight: 100, ip: 0x0a000115, ipText: '10.0.1.21', mac: mac(2, 0, 0, 0, 1, 0x21), macText: '02:00:00:00:01:21', health: null },
      { name: 'web2', weight: 100, ip: 0x0a000116, ipText: '10.0.1.22', mac: mac(2, 0, 0, 0, 1, 0x22), macText: '02:00:00:00:01:22', health: null },
    ],
    services: [
      { vip: 0x0a000064, vipText: '10.0.0.100', port: 0, active: 'web1', standby: [], line: 8, failover: FAILOVER_DEFAULTS },
      { vip: 0x0a000065, vipText: '10.0.0.101', port: 80, active: 'web1', standby: ['web2'], line: 9, failover: FAILOVER_DEFAULTS },
    ],
    flows: { capacity: 65536, halfOpenTimeoutMs: 15_000, establishedTimeoutMs: 900_000, closingTimeoutMs: 30_000 },
    neighbours: { capacity: 4096, ttlMs: 300_000 },
    natGateway: null,
    natGatewayText: null,
    announce: { count: 3, intervalMs: 1000, refreshMs: 0 },
    icmp: { echo: true, echoRate: 1000, echoBurst: 50 },
    api: { listen: '127.0.0.1:9180', token: null },
    stateFile: null,
    shmDir: '/dev/shm',
    log: { level: 'info', format: 'json' },
    health: null,
    spares: [],
    synCheck: null,
    events: EVENTS_DEFAULTS,
    io: { backend: 'auto', batch: 256, spinUs: 200, rtPriority: 0 },
    cluster: null,
    vipPlacement: new Map(),
  };
}

t.test('api, state_file, log and backend weight', async (t) => {
  const c = parseConfig(SCHEMA_EXAMPLE + 'api: { listen: "0.0.0.0:9999", token: 0123456789abcdef0123 }\nstate_file: /var/lib/vipgate/s.json\nlog: { level: debug, format: text }\n', 'a.yaml');
  t.same(c.api, { listen: '0.0.0.0:9999', token: '0123456789abcdef0123' });
  t.equal(c.stateFile, '/var/lib/vipgate/s.json');
  t.same(c.log, { level: 'debug', format: 'text' });
  t.match(reject(SCHEMA_EXAMPLE + 'api: { listen: nowhere }\n').message, /not HOST:PORT/);
  t.match(reject(SCHEMA_EXAMPLE + 'api: { listen: "1.2.3.4:70000" }\n').message, /not HOST:PORT/);
  t.match(reject(SCHEMA_EXAMPLE + 'api: { token: short }\n').message, /at least 16 characters/);
  t.match(reject(SCHEMA_EXAMPLE + 'log: { level: loud }\n').message, /not a log level/);
  t.match(reject(SCHEMA_EXAMPLE + 'state_file: /tmp/\n').message, /file path/);
  t.equal(parseConfig(SCHEMA_EXAMPLE, 'd.yaml').shmDir, '/dev/shm', 'shm_dir: /dev/shm by default');
  t.equal(parseConfig(SCHEMA_EXAMPLE + 'shm_dir: /run/vipgate/shm/\n', 's.yaml').shmDir, '/run/vipgate/shm', 'shm_dir: a trailing slash is dropped');
  t.equal(parseConfig(SCHEMA_EXAMPLE + 'shm_dir: ///\n', 's.yaml').shmDir, '/', 'shm_dir: only slashes is the root');
  t.match(reject(SCHEMA_EXAMPLE + 'shm_dir: run/shm\n').message, /shm_dir must be an absolute directory path on a tmpfs/);
  const w = parseConfig(SCHEMA_EXAMPLE.replace('name: web2,', 'name: web2, weight: 0,'), 'w.yaml');
  t.equal(w.backends[1]!.weight, 0);
  t.match(reject(SCHEMA_EXAMPLE.replace('name: web2,', 'name: web2, weight: 1001,')).message, /weight/);
});

t.test('io: native | pcap, or a mapping with the native tuning', async (t) => {
  t.same(parseConfig(SCHEMA_EXAMPLE, 'a.yaml').io, { backend: 'auto', batch: 256, spinUs: 200, rtPriority: 0 }, 'absent: auto (native where it works)');
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: pcap\n', 'a.yaml').io, { backend: 'pcap', batch: 256, spinUs: 200, rtPriority: 0 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: { backend: native, batch: 64, spin_us: 0 }\n', 'a.yaml').io, { backend: 'native', batch: 64, spinUs: 0, rtPriority: 0 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: { spin_us: 50 }\n', 'a.yaml').io, { backend: 'auto', batch: 256, spinUs: 50, rtPriority: 0 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: { rt_priority: 10 }\n', 'a.yaml').io, { backend: 'auto', batch: 256, spinUs: 0, rtPriority: 10 }, 'rt_priority: polling off unless given');
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: { rt_priority: 10, spin_us: 0 }\n', 'a.yaml').io, { backend: 'auto', batch: 256, spinUs: 0, rtPriority: 10 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'io: { rt_priority: 0, spin_us: 50 }\n', 'a.yaml').io, { backend: 'auto', batch: 256, spinUs: 50, rtPriority: 0 }, 'rt_priority 0: off');
  t.match(describeConfig(parseConfig(SCHEMA_EXAMPLE + 'io: { rt_priority: 10 }\n', 'a.yaml')), 'polling 0 µs); the packet worker real-time (SCHED_FIFO 10)');
  t.match(describeConfig(parseConfig(SCHEMA_EXAMPLE, 'a.yaml')), 'packet I/O: native where it works, else pcap (batches of up to 256, polling 200 µs)');
  t.match(describeConfig(parseConfig(SCHEMA_EXAMPLE + 'io: pcap\n', 'a.yaml')), 'packet I/O: pcap');
});

t.test('nat_gateway and announce', async (t) => {
  const nat = parseConfig(SCHEMA_EXAMPLE.replace('mode: dsr', 'mode: nat') + 'nat_gateway: 10.0.1.1\nannounce: { count: 5, interval: 200ms, refresh: 60s }\n', 'n.yaml');
  t.same([nat.natGateway, nat.natGatewayText], [0x0a000101, '10.0.1.1']);
  t.same(nat.announce, { count: 5, intervalMs: 200, refreshMs: 60_000 });
  t.match(reject(SCHEMA_EXAMPLE + 'nat_gateway: 10.0.1.1\n').message, /only applies to mode: nat/);
  t.match(reject(SCHEMA_EXAMPLE.replace('mode: dsr', 'mode: nat') + 'nat_gateway: 10.0.1.21\n').message, /already a VIP or a backend/);
  t.match(reject(SCHEMA_EXAMPLE + 'announce: { count: 0 }\n').message, /announce\.count/);
});

t.test('icmp: echo on by default, rate and burst', async (t) => {
  t.same(parseConfig(SCHEMA_EXAMPLE, 'd.yaml').icmp, { echo: true, echoRate: 1000, echoBurst: 50 }, 'defaults: Linux icmp_msgs_per_sec / icmp_msgs_burst');
  t.same(parseConfig(SCHEMA_EXAMPLE + 'icmp: { echo: false }\n', 'o.yaml').icmp, { echo: false, echoRate: 1000, echoBurst: 50 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'icmp: { echo_rate: 200/s, echo_burst: 10 }\n', 'r.yaml').icmp, { echo: true, echoRate: 200, echoBurst: 10 });
  t.same(parseConfig(SCHEMA_EXAMPLE + 'icmp: { echo_rate: 300 }\n', 'n.yaml').icmp.echoRate, 300, 'a plain number is per second');
  const lines = SCHEMA_EXAMPLE.split('\n').length;
  t.match(reject(SCHEMA_EXAMPLE + 'icmp: { echo: yes please }\n', 'e.yaml').message, new RegExp(`^e\\.yaml:${lines}:\\d+: icmp\\.echo: expected true .* or false`));
  t.match(reject(SCHEMA_EXAMPLE + 'icmp: { echo_rate: 0/s }\n').message, /icmp\.echo_rate: 0\/s is out of range; icmp\.echo_rate must be 1\/s\.\.1000000\/s/);
  t.match(reject(SCHEMA_EXAMPLE + 'icmp: { echo_rate: fast }\n').message, /icmp\.echo_rate: expected icmp\.echo_rate \(echo replies per second/);
  t.match(reject(SCHEMA_EXAMPLE + 'icmp: { echo_burst: 0 }\n').message, /icmp\.echo_burst: 0 is out of range/);
  t.match(reject(SCHEMA_EXAMPLE + 'icmp: { ecko: true }\n').message, /icmp\.ecko: unknown key \(did you mean "echo"\?\)/);
});

/** Parse and return the ConfigError, or fail the test if it parsed. */
function reject(text: string, file = 'test.yaml', opts?: { requireMac?: boolean }): ConfigError {
  try {
    parseConfig(text, file, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

t.test('happy path: the schema example parses to exactly the expected Config', async (t) => {
  const c = parseConfig(SCHEMA_EXAMPLE, 'example.yaml');
  t.strictSame(c, expectedExample('example.yaml', 'dsr'));
  t.equal(parseConfig(SCHEMA_EXAMPLE).file, '<inline>', 'text without a file name is <inline>');
});

t.test('defaults and optional keys', async (t) => {
  const minimal = 'mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100]\n';
  const c = parseConfig(minimal, 'm.yaml');
  t.equal(c.mode, 'dsr', 'mode defaults to dsr');
  t.equal(c.interface, null);
  t.strictSame(c.backends, [], 'backends optional (they may register through the API)');
  t.strictSame(c.services, [], 'a VIP without any service is allowed');
  t.strictSame(c.flows, CONFIG_DEFAULTS.flows);
  t.strictSame(c.neighbours, CONFIG_DEFAULTS.neighbours);

  const full = parseConfig(
    [
      'interface: eth0',
      'mac: "02-00-5E-00-00-01"',
      'mode: nat',
      'vips: [10.0.0.100]',
      'backends: [{ name: a.b_c-1, ip: 10.0.1.1 }]',
      'services: [{ vip: 10.0.0.100, port: 443, active: a.b_c-1 }]',
      'flows: { capacity: 1, half_open_timeout: 500ms, established_timeout: 2h, closing_timeout: 0.25 }',
      'neighbours: { capacity: 1048576, ttl: 5m }',
    ].join('\n'),
    'full.yaml',
  );
  t.equal(full.interface, 'eth0');
  t.equal(full.macText, '02:00:5e:00:00:01', 'dash-separated, upper-case MAC normalized');
  t.equal(full.mode, 'nat');
  t.strictSame(full.backends[0], { name: 'a.b_c-1', weight: 100, ip: 0x0a000101, ipText: '10.0.1.1', mac: null, macText: null, health: null },
    'backend mac optional');
  t.strictSame(full.services[0], { vip: 0x0a000064, vipText: '10.0.0.100', port: 443, active: 'a.b_c-1', standby: [], line: 6, failover: FAILOVER_DEFAULTS },
    'standby optional in port mode');
  t.strictSame(full.flows, { capacity: 1, halfOpenTimeoutMs: 500, establishedTimeoutMs: 7_200_000, closingTimeoutMs: 250 });
  t.strictSame(full.neighbours, { capacity: 1048576, ttlMs: 300_000 });

  // IP mode and port mode on the same VIP: allowed, port mode wins for its port.
  const both = parseConfig(
    'mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100]\nbackends: [{ name: a, ip: 10.0.1.1 }, { name: b, ip: 10.0.1.2 }]\n' +
      'services:\n  - { vip: 10.0.0.100, backend: a }\n  - { vip: 10.0.0.100, port: 80, active: b, standby: [a] }\n' +
      '  - { vip: 10.0.0.100, port: 443, active: a }\n',
  );
  t.strictSame(both.services.map((s) => [s.port, s.active, s.standby, s.line]), [[0, 'a', [], 5], [80, 'b', ['a'], 6], [443, 'a', [], 7]]);

  // requireMac: false (live mode defaults the MAC to the NIC's).
  const noMac = parseConfig('vips: [10.0.0.100]\n', 'live.yaml', { requireMac: false });
  t.equal(noMac.mac, null);
  t.equal(noMac.macText, null);
  const withMac = parseConfig(minimal, 'live.yaml', { requireMac: false });
  t.equal(withMac.macText, '02:00:5e:00:00:01', 'mac still used when given');

  // YAML niceties that should keep working: block style, anchors, comments, a BOM.
  const block = parseConfig(
    '\ufeff# comment\nmac: &m "02:00:5e:00:00:01"\nvips:\n  - 10.0.0.100\nbackends:\n  - name: web1\n    ip: 10.0.1.21\n' +
      'services:\n  - vip: 10.0.0.100\n    port: 22\n    active: web1\n    standby: []\n',
  );
  t.equal(block.services[0]!.line, 9);
  t.equal(block.services[0]!.port, 22);
});

// ---------------------------------------------------------------------------------------------
// The fixture table.

/**
 * Builds a config with one section per line so fixture line numbers stay put:
 * line 1 mac, 2 mode, 3 vips, 4 backends, 5 services, 6.. extra. Pass null to leave a
 * section out (a comment keeps the line).
 */
function cfg(o: { mac?: string | null; mode?: string | null; vips?: string | null; backends?: string | null; services?: string | null; extra?: string[] } = {}): string {
  const line = (v: string | null | undefined, def: string) => (v === null ? '# (left out)' : v ?? def);
  return [
    line(o.mac, 'mac: "02:00:5e:00:00:01"'),
    line(o.mode, 'mode: dsr'),
    line(o.vips, 'vips: [10.0.0.100, 10.0.0.101]'),
    line(o.backends, 'backends: [{ name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }, { name: web2, ip: 10.0.1.22 }]'),
    line(o.services, 'services: [{ vip: 10.0.0.100, backend: web1 }, { vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }]'),
    ...(o.extra ?? []),
  ].join('\n') + '\n';
}

interface Fixture {
  d: string;
  yaml: string;
  code: string;
  line: number;
  /** Text the column points at: expected column = 1 + its index in that line (first match
   *  after `from`, if given). Omit to skip the column check. */
  at?: string;
  from?: number;
  /** Substrings the (single) message must contain. */
  msg: string[];
  /** Expected number of problems (default 1: no follow-on noise); 'any' for YAML syntax
   *  errors, where the parser may report one mistake more than once. */
  count?: number | 'any';
  /** Expected path of the problem. */
  path?: string;
  opts?: { requireMac?: boolean };
}

const S = ConfigErrorCode.SYNTAX;
const I = ConfigErrorCode.INVALID;

const fixtures: Fixture[] = [
  // --- YAML syntax -------------------------------------------------------------------------
  { d: 'unclosed flow sequence', yaml: 'mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100\nmode: dsr\n', code: S, line: 3, msg: ['YAML syntax error', 'BAD_INDENT'], count: 'any' },
  { d: 'duplicate key', yaml: 'mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100]\nmac: "02:00:5e:00:00:02"\n', code: S, line: 3, at: 'mac', msg: ['DUPLICATE_KEY', 'remove or rename the repeated key'] },
  { d: 'tab indentation', yaml: 'vips:\n\t- 10.0.0.100\n', code: S, line: 2, msg: ['TAB_AS_INDENT', 'indent with spaces'], count: 'any' },
  { d: 'two documents', yaml: 'mac: "02:00:5e:00:00:01"\n---\nvips: [10.0.0.100]\n', code: S, line: 2, msg: ['MULTIPLE_DOCS', 'single YAML document'] },
  { d: 'unknown tag', yaml: 'mac: !mac "02:00:5e:00:00:01"\nvips: [10.0.0.100]\n', code: S, line: 1, at: '!mac', msg: ['TAG_RESOLVE_FAILED', 'remove the !tag'] },
  { d: 'unterminated string', yaml: 'mac: "02:00:5e:00:00:01\nvips: [10.0.0.100]\n', code: S, line: 3, msg: ['YAML syntax error'], count: 'any' },
  { d: 'absurd bracket nesting', yaml: 'vips: ' + '['.repeat(100), code: S, line: 1, at: '[', from: 6 + 64, msg: ['nested too deeply', '64'] },
  { d: 'absurd block nesting', yaml: 'vips:\n' + '- '.repeat(80) + 'x\n', code: S, line: 2, msg: ['nested too deeply', '128'] },

  // --- document shape ----------------------------------------------------------------------
  { d: 'empty document', yaml: '', code: I, line: 1, msg: ['the config is empty', 'mac:', 'vips:'] },
  { d: 'only comments', yaml: '# nothing here\n', code: I, line: 1, msg: ['the config is empty'] },
  { d: 'top level is a list', yaml: '- mac: x\n', code: I, line: 1, msg: ['expected a mapping of keys at the top level', 'got a list'] },
  { d: 'top level is a scalar', yaml: 'hello\n', code: I, line: 1, msg: ['expected a mapping', 'got the string "hello"'] },
  { d: 'typo in a top-level key', yaml: cfg({ extra: ['servics: []'] }), code: I, line: 6, at: 'servics', path: 'servics', msg: ['unknown key', 'did you mean "services"?', 'allowed keys here: interface, mac, mode, vips, backends, services, flows, neighbours'] },
  { d: 'American spelling of neighbours', yaml: cfg({ extra: ['neighbors: { ttl: 5s }'] }), code: I, line: 6, at: 'neighbors', msg: ['did you mean "neighbours"?'] },
  { d: 'unknown key with no near match', yaml: cfg({ extra: ['quorum: {}'] }), code: I, line: 6, at: 'quorum', msg: ['unknown key;', 'allowed keys here'] },
  { d: 'non-scalar key', yaml: cfg({ extra: ['[a]: 1'] }), code: I, line: 6, at: '[a]', path: '(a list)', msg: ['unknown key', 'allowed keys here'] },
  { d: 'unknown key in a backend', yaml: cfg({ backends: 'backends: [{ name: web1, adress: 10.0.1.21, ip: 10.0.1.21 }, { name: web2, ip: 10.0.1.22 }]' }), code: I, line: 4, at: 'adress', path: 'backends[0].adress', msg: ['unknown key', 'allowed keys here: name, ip, mac'] },
  { d: 'typo in a service key', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1, stanby: [web2] }]' }), code: I, line: 5, at: 'stanby', msg: ['did you mean "standby"?', 'vip, backend, port, active, standby'] },
  { d: 'typo in flows', yaml: cfg({ extra: ['flows: { capacty: 10 }'] }), code: I, line: 6, at: 'capacty', path: 'flows.capacty', msg: ['did you mean "capacity"?'] },
  { d: 'alias to no anchor', yaml: cfg({ mac: 'mac: *m' }), code: I, line: 1, at: '*m', path: 'mac', msg: ['alias *m refers to no &m anchor'] },

  // --- wrong types -------------------------------------------------------------------------
  { d: 'vips is a scalar', yaml: cfg({ vips: 'vips: 10.0.0.100' }), code: I, line: 3, at: '10.0.0.100', path: 'vips', msg: ['expected a list of IPv4 addresses', 'got the string "10.0.0.100"', 'vips: ["10.0.0.100", "10.0.0.101"]'] },
  { d: 'backends is a mapping', yaml: cfg({ backends: 'backends: { web1: 10.0.1.21 }', services: null }), code: I, line: 4, path: 'backends', msg: ['expected a list of backends', 'got a mapping'] },
  { d: 'a backend is a string', yaml: cfg({ backends: 'backends: [web1]', services: null }), code: I, line: 4, at: 'web1', path: 'backends[0]', msg: ['expected a backend mapping', 'got the string "web1"'] },
  { d: 'mac is a list', yaml: cfg({ mac: 'mac: [2, 0]' }), code: I, line: 1, at: '[', path: 'mac', msg: ['expected a MAC address like "02:00:5e:00:00:01"', 'got a list'] },
  { d: 'mac has no value', yaml: cfg({ mac: 'mac:' }), code: I, line: 1, path: 'mac', msg: ['expected a MAC address', 'got no value'] },
  { d: 'flows is a number', yaml: cfg({ extra: ['flows: 5'] }), code: I, line: 6, at: '5', path: 'flows', msg: ['expected a mapping like { capacity: 65536', 'got the number 5'] },
  { d: 'standby is a scalar', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1, standby: web2 }]' }), code: I, line: 5, at: 'web2', path: 'services[0].standby', msg: ['expected a list of backend names', 'standby: [web2, web3]'] },
  { d: 'a service is a list', yaml: cfg({ services: 'services: [[10.0.0.100, web1]]' }), code: I, line: 5, at: '[10.0.0.100', path: 'services[0]', msg: ['expected a service mapping', 'IP mode', 'port mode'] },

  // --- mac ---------------------------------------------------------------------------------
  { d: 'mac missing', yaml: cfg({ mac: null }), code: I, line: 2, path: 'mac', msg: ['missing', 'mac: "02:00:5e:00:00:01"'] },
  { d: 'mac too short', yaml: cfg({ mac: 'mac: "02:00:5e:00:00"' }), code: I, line: 1, at: '"02', path: 'mac', msg: ['"02:00:5e:00:00" is not a MAC address', 'six hex bytes'] },
  { d: 'mac not hex', yaml: cfg({ mac: 'mac: "02:00:5e:00:00:zz"' }), code: I, line: 1, msg: ['is not a MAC address'] },
  { d: 'multicast mac', yaml: cfg({ mac: 'mac: "01:00:5e:00:00:01"' }), code: I, line: 1, at: '"01', msg: ['01:00:5e:00:00:01 is a group (multicast/broadcast) MAC', 'lowest bit of the first byte', 'use a unicast MAC'] },
  { d: 'broadcast mac', yaml: cfg({ mac: 'mac: "ff:ff:ff:ff:ff:ff"' }), code: I, line: 1, msg: ['ff:ff:ff:ff:ff:ff is a group'] },
  { d: 'all-zero mac', yaml: cfg({ mac: 'mac: "00:00:00:00:00:00"' }), code: I, line: 1, msg: ['00:00:00:00:00:00 is the all-zero MAC'] },

  // --- mode, interface -----------------------------------------------------------------------
  { d: 'bad mode', yaml: cfg({ mode: 'mode: lb' }), code: I, line: 2, at: 'lb', path: 'mode', msg: ['"lb" is not a forwarding mode', 'use dsr', 'or nat'] },
  { d: 'mode upper case', yaml: cfg({ mode: 'mode: NAT' }), code: I, line: 2, at: 'NAT', msg: ['"NAT" is not a forwarding mode'] },
  { d: 'bad interface name', yaml: cfg({ extra: ['interface: "eth0/1"'] }), code: I, line: 6, at: '"eth0/1"', path: 'interface', msg: ['is not a valid Linux interface name', '1-15 characters'] },
  { d: 'interface name too long', yaml: cfg({ extra: ['interface: abcdefghijklmnop'] }), code: I, line: 6, msg: ['is not a valid Linux interface name'] },

  // --- vips --------------------------------------------------------------------------------
  { d: 'vips missing', yaml: cfg({ vips: null, services: null }), code: I, line: 1, path: 'vips', msg: ['missing', 'vips: ["10.0.0.100"]'] },
  { d: 'vips empty', yaml: cfg({ vips: 'vips: []', services: null }), code: I, line: 3, at: '[]', path: 'vips', msg: ['the list is empty', 'at least one virtual IP'] },
  { d: 'vip out of range', yaml: cfg({ vips: 'vips: [10.0.0.100, "10.0.0.300", 10.0.0.101]' }), code: I, line: 3, at: '"10.0.0.300"', path: 'vips[1]', msg: ['vips[1]: "10.0.0.300" is not an IPv4 address (expected dotted quad like 10.0.0.100)'] },
  { d: 'vip is a number', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 10.5]' }), code: I, line: 3, at: '10.5', msg: ['"10.5" is not an IPv4 address'] },
  { d: 'vip 0.0.0.0', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 0.0.0.0]' }), code: I, line: 3, at: '0.0.0.0', path: 'vips[2]', msg: ['0.0.0.0 is the unspecified address', 'a VIP must be a unicast address'] },
  { d: 'vip in 0/8', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 0.1.2.3]' }), code: I, line: 3, msg: ['0.0.0.0/8'] },
  { d: 'vip broadcast', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 255.255.255.255]' }), code: I, line: 3, at: '255', msg: ['255.255.255.255 is the limited broadcast address'] },
  { d: 'vip multicast low', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 224.0.0.5]' }), code: I, line: 3, at: '224', msg: ['224.0.0.5 is a multicast address (224.0.0.0/4)'] },
  { d: 'vip multicast high', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 239.255.255.255]' }), code: I, line: 3, msg: ['is a multicast address'] },
  { d: 'vip loopback', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 127.0.0.1]' }), code: I, line: 3, at: '127', msg: ['127.0.0.1 is a loopback address (127.0.0.0/8)'] },
  { d: 'duplicate vip', yaml: cfg({ vips: 'vips: [10.0.0.100, 10.0.0.101, 10.0.0.100]' }), code: I, line: 3, at: '10.0.0.100', from: 20, path: 'vips[2]', msg: ['10.0.0.100 is listed twice (first as vips[0] on line 3); remove one'] },

  // --- backends ----------------------------------------------------------------------------
  { d: 'backend name with a space', yaml: cfg({ backends: 'backends: [{ name: "web 1", ip: 10.0.1.21 }]', services: null }), code: I, line: 4, at: '"web 1"', path: 'backends[0].name', msg: ['"web 1" is not a valid backend name', '1-64 characters from A-Z a-z 0-9 _ . -'] },
  { d: 'backend name too long', yaml: cfg({ backends: `backends: [{ name: ${'a'.repeat(65)}, ip: 10.0.1.21 }]`, services: null }), code: I, line: 4, msg: ['is not a valid backend name'] },
  { d: 'backend without name', yaml: cfg({ backends: 'backends: [{ ip: 10.0.1.21 }]', services: null }), code: I, line: 4, at: '{', path: 'backends[0].name', msg: ['missing', 'name: web1'] },
  { d: 'backend without ip', yaml: cfg({ backends: 'backends: [{ name: web1 }]', services: null }), code: I, line: 4, at: '{', path: 'backends[0].ip', msg: ['missing', 'ip: 10.0.1.21'] },
  { d: 'backend bad ip', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1 }]', services: null }), code: I, line: 4, at: '10.0.1 ', path: 'backends[0].ip', msg: ['"10.0.1" is not an IPv4 address'] },
  { d: 'backend loopback ip', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 127.0.0.2 }]', services: null }), code: I, line: 4, msg: ['127.0.0.2 is a loopback address', 'a backend IP must be the unicast address of a real server'] },
  { d: 'duplicate backend name', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1.21 }, { name: web1, ip: 10.0.1.22 }]', services: null }), code: I, line: 4, at: 'web1', from: 20, path: 'backends[1].name', msg: ['"web1" is already the name of backends[0] (line 4)', 'must be unique'] },
  { d: 'duplicate backend ip', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1.21 }, { name: web2, ip: 10.0.1.21 }]', services: null }), code: I, line: 4, at: '10.0.1.21', from: 40, path: 'backends[1].ip', msg: ['10.0.1.21 is already the address of backends[0] (line 4)', 'its own IP'] },
  { d: 'backend ip is a vip', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.0.101 }]', services: null }), code: I, line: 4, at: '10.0.0.101', path: 'backends[0].ip', msg: ['10.0.0.101 is also a VIP (vips[1], line 3)', 'not a VIP'] },
  { d: 'backend bad mac', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01" }]', services: null }), code: I, line: 4, at: '"02', path: 'backends[0].mac', msg: ['"02:00:00:00:01" is not a MAC address'] },
  { d: 'backend multicast mac', yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1.21, mac: "03:00:00:00:01:21" }]', services: null }), code: I, line: 4, msg: ['03:00:00:00:01:21 is a group'] },
  { d: "backend mac is vipgate's own", yaml: cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1.21, mac: "02:00:5E:00:00:01" }]', services: null }), code: I, line: 4, msg: ["02:00:5e:00:00:01 is vipgate's own mac (line 1)", 'learn it by ARP'] },

  // --- services ----------------------------------------------------------------------------
  { d: 'service vip not in vips', yaml: cfg({ services: 'services: [{ vip: 10.0.0.102, backend: web1 }]' }), code: I, line: 5, at: '10.0.0.102', path: 'services[0].vip', msg: ['10.0.0.102 is not one of vips (10.0.0.100, 10.0.0.101)', 'add it to vips or fix the address'] },
  { d: 'service vip invalid', yaml: cfg({ services: 'services: [{ vip: 10.0.0, backend: web1 }]' }), code: I, line: 5, at: '10.0.0,', msg: ['"10.0.0" is not an IPv4 address'] },
  { d: 'service without vip', yaml: cfg({ services: 'services: [{ backend: web1 }]' }), code: I, line: 5, at: '{', path: 'services[0].vip', msg: ['missing', 'vip: 10.0.0.100'] },
  { d: 'IP-mode service without backend', yaml: cfg({ services: 'services: [{ vip: 10.0.0.100 }]' }), code: I, line: 5, at: '{', path: 'services[0].backend', msg: ['missing', 'IP-mode service needs backend: NAME', 'port mode give port:, active:'] },
  { d: 'backend together with port', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, backend: web1, active: web1 }]' }), code: I, line: 5, at: 'web1', path: 'services[0].backend', msg: ['backend is for IP-mode services (no port)', 'name the backend in active:'] },
  { d: 'standby on an IP-mode service', yaml: cfg({ services: 'services: [{ vip: 10.0.0.100, backend: web1, standby: [web2] }]' }), code: I, line: 5, at: '[web2]', path: 'services[0].standby', msg: ['standby only applies to port mode', 'add port: and name the backend in active:'] },
  { d: 'active on an IP-mode service', yaml: cfg({ services: 'services: [{ vip: 10.0.0.100, backend: web1, active: web2 }]' }), code: I, line: 5, at: 'web2', path: 'services[0].active', msg: ['active only applies to port mode'] },
  { d: 'active without port', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, active: web1, standby: [web2] }]' }), code: I, line: 5, at: '{', path: 'services[0].port', msg: ['missing', 'need a port (port mode), e.g. port: 80', 'for IP mode use backend: NAME'] },
  { d: 'port without active', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80 }]' }), code: I, line: 5, at: '{', path: 'services[0].active', msg: ['missing', 'port-mode service needs active: NAME'] },
  { d: 'port 0', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 0, active: web1 }]' }), code: I, line: 5, at: '0,', path: 'services[0].port', msg: ['port must be 1..65535', 'leave port out and use backend:'] },
  { d: 'port too big', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 65536, active: web1 }]' }), code: I, line: 5, at: '65536', msg: ['65536 is out of range; port must be 1..65535'] },
  { d: 'negative port', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: -1, active: web1 }]' }), code: I, line: 5, msg: ['-1 is out of range'] },
  { d: 'port is a quoted string', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: "80", active: web1 }]' }), code: I, line: 5, at: '"80"', msg: ['expected port as an integer 1..65535', 'got the string "80"', 'remove the quotes'] },
  { d: 'port is a fraction', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80.5, active: web1 }]' }), code: I, line: 5, msg: ['80.5 is not a whole number'] },
  { d: 'unknown IP-mode backend', yaml: cfg({ services: 'services: [{ vip: 10.0.0.100, backend: web3 }]' }), code: I, line: 5, at: 'web3', path: 'services[0].backend', msg: ['unknown backend "web3" (defined backends: web1, web2)', 'add it under backends or fix the name'] },
  { d: 'unknown active backend', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web3 }]' }), code: I, line: 5, at: 'web3', path: 'services[0].active', msg: ['unknown backend "web3"'] },
  { d: 'unknown standby backend', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2, web4] }]' }), code: I, line: 5, at: 'web4', path: 'services[0].standby[1]', msg: ['unknown backend "web4"'] },
  { d: 'active repeated in standby', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2, web1] }]' }), code: I, line: 5, at: 'web1', from: 60, path: 'services[0].standby[1]', msg: ['"web1" is the active backend', 'a standby must be a different backend'] },
  { d: 'duplicate standby', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2, web2] }]' }), code: I, line: 5, at: 'web2', from: 65, path: 'services[0].standby[1]', msg: ['"web2" is listed twice (also standby[0])', 'list each standby once'] },
  { d: 'two services for the same vip and port', yaml: cfg({ services: 'services: [{ vip: 10.0.0.101, port: 80, active: web1 }, { vip: 10.0.0.101, port: 80, active: web2 }]' }), code: I, line: 5, at: '80', from: 60, path: 'services[1]', msg: ['10.0.0.101:80 already has a service (services[0], line 5)', 'one service per VIP and port'] },
  { d: 'two IP-mode services for the same vip', yaml: cfg({ services: 'services:\n  - { vip: 10.0.0.100, backend: web1 }\n  - { vip: 10.0.0.100, backend: web2 }' }), code: I, line: 7, at: '10.0.0.100', path: 'services[1]', msg: ['10.0.0.100 already has an IP-mode service (services[0], line 6)', 'use port mode with active/standby'] },

  // --- flows, neighbours -------------------------------------------------------------------
  { d: 'flow capacity 0', yaml: cfg({ extra: ['flows: { capacity: 0 }'] }), code: I, line: 6, at: '0', path: 'flows.capacity', msg: ['0 is out of range', 'must be 1..16777216'] },
  { d: 'flow capacity too big', yaml: cfg({ extra: ['flows: { capacity: 16777217 }'] }), code: I, line: 6, msg: ['16777217 is out of range', '1..16777216'] },
  { d: 'flow capacity as text', yaml: cfg({ extra: ['flows: { capacity: lots }'] }), code: I, line: 6, msg: ['expected flows.capacity (flow table slots) as an integer 1..16777216', 'got the string "lots"'] },
  { d: 'neighbour capacity too big', yaml: cfg({ extra: ['neighbours: { capacity: 1048577 }'] }), code: I, line: 6, at: '1048577', path: 'neighbours.capacity', msg: ['1048577 is out of range', '1..1048576'] },
  { d: 'duration without a valid unit', yaml: cfg({ extra: ['flows: { half_open_timeout: 15 sec }'] }), code: I, line: 6, at: '15 sec', path: 'flows.half_open_timeout', msg: ['"15 sec" is not a duration', '500ms, 15s, 5m, 1h'] },
  { d: 'duration in days', yaml: cfg({ extra: ['flows: { established_timeout: 2d }'] }), code: I, line: 6, msg: ['"2d" is not a duration'] },
  { d: 'duration zero', yaml: cfg({ extra: ['flows: { closing_timeout: 0 }'] }), code: I, line: 6, msg: ['0 is out of range', 'between 1ms and 168h'] },
  { d: 'duration negative', yaml: cfg({ extra: ['neighbours: { ttl: -5 }'] }), code: I, line: 6, path: 'neighbours.ttl', msg: ['-5 is not a duration'] },
  { d: 'duration too long', yaml: cfg({ extra: ['neighbours: { ttl: 8000h }'] }), code: I, line: 6, msg: ['8000h is out of range'] },
  { d: 'duration below a millisecond', yaml: cfg({ extra: ['flows: { closing_timeout: 1.5ms }'] }), code: I, line: 6, msg: ['1.5ms is not a whole number of milliseconds'] },
  { d: 'duration as a list', yaml: cfg({ extra: ['neighbours: { ttl: [5] }'] }), code: I, line: 6, msg: ['a list is not a duration'] },

  // --- io ----------------------------------------------------------------------------------
  { d: 'io backend unknown', yaml: cfg({ extra: ['io: dpdk'] }), code: I, line: 6, at: 'dpdk', path: 'io', msg: ['"dpdk" is not a packet I/O backend', 'use native', 'or pcap'] },
  { d: 'io batch zero', yaml: cfg({ extra: ['io: { backend: native, batch: 0 }'] }), code: I, line: 6, path: 'io.batch', msg: ['0 is out of range', 'io.batch (frames per turn of the event loop) must be 1..4096'] },
  { d: 'io spin as a duration', yaml: cfg({ extra: ['io: { spin_us: 200us }'] }), code: I, line: 6, path: 'io.spin_us', msg: ['expected io.spin_us', 'as an integer 0..1000000'] },
  { d: 'io rt_priority too high', yaml: cfg({ extra: ['io: { rt_priority: 100 }'] }), code: I, line: 6, path: 'io.rt_priority', msg: ['100 is out of range', 'SCHED_FIFO priority'] },
  { d: 'io rt_priority with polling', yaml: cfg({ extra: ['io: { rt_priority: 10, spin_us: 200 }'] }), code: I, line: 6, path: 'io.spin_us', msg: ['io.spin_us 200 with io.rt_priority', 'throttles it', 'use spin_us: 0'] },
  { d: 'io typo', yaml: cfg({ extra: ['io: { backnd: pcap }'] }), code: I, line: 6, path: 'io.backnd', msg: ['did you mean "backend"?'] },

  // --- requireMac --------------------------------------------------------------------------
  { d: 'requireMac: false still validates a given mac', yaml: cfg({ mac: 'mac: "01:00:00:00:00:01"' }), opts: { requireMac: false }, code: I, line: 1, msg: ['is a group'] },
];

t.test('fixture table: every rule reports a located, actionable error', async (t) => {
  for (const f of fixtures) {
    t.test(f.d, async (t) => {
      const file = 'fix.yaml';
      const e = reject(f.yaml, file, f.opts);
      t.ok(e instanceof VipgateError && isVipgateError(e), 'is a VipgateError');
      t.equal(e.name, 'ConfigError');
      t.equal(e.code, f.code, 'code');
      if (f.count !== 'any') t.equal(e.errors.length, f.count ?? 1, `problem count\n${e.message}`);
      const first = e.errors[0]!;
      t.equal(e.file, file);
      t.equal(e.line, first.line);
      t.equal(e.column, first.column);
      t.equal(first.line, f.line, `line\n${e.message}`);
      if (f.at !== undefined) {
        const srcLine = f.yaml.split('\n')[f.line - 1] ?? '';
        const idx = srcLine.indexOf(f.at, f.from ?? 0);
        t.not(idx, -1, `fixture: "${f.at}" is on line ${f.line}`);
        t.equal(first.column, idx + 1, `column\n${e.message}`);
      }
      if (f.path !== undefined) t.equal(first.path, f.path, 'path');
      for (const m of f.msg) t.match(first.message, m.startsWith(`${first.path}: `) ? m.slice(first.path.length + 2) : m, `message has ${JSON.stringify(m)}`);
      // The message line itself: FILE:LINE:COL: path: text.
      const head = e.message.split('\n')[0]!;
      t.ok(head.startsWith(`${file}:${first.line}:${first.column}: `), `message starts with the location: ${head}`);
      for (const m of f.msg) t.ok(head.includes(m), `first line has ${JSON.stringify(m)}`);
      t.notMatch(e.message, /\n\s+at /, 'no stack trace in the message');
    });
  }
});

t.test('all problems are reported at once, in file order, one per line', async (t) => {
  const text = [
    'mac: "01:00:5e:00:00:01"',
    'mode: lb',
    'vips: [10.0.0.300, 10.0.0.100]',
    'backends: [{ name: web1, ip: 10.0.0.100 }]',
    'services: [{ vip: 10.0.0.100, port: 80, active: web9 }]',
    'flows: { capacity: 0 }',
  ].join('\n');
  const e = reject(text, 'many.yaml');
  t.equal(e.code, ConfigErrorCode.INVALID);
  t.strictSame(e.errors.map((i: ConfigIssue) => [i.line, i.path]), [
    [1, 'mac'], [2, 'mode'], [3, 'vips[0]'], [4, 'backends[0].ip'], [5, 'services[0].active'], [6, 'flows.capacity'],
  ]);
  const lines = e.message.split('\n');
  t.equal(lines.length, 6);
  for (const [i, l] of lines.entries()) t.match(l, new RegExp(`^many\\.yaml:${i + 1}:\\d+: `));
  t.equal(e.line, 1);
  t.equal(e.column, 6);

  // A cascade is not reported twice: a backend rejected for its IP is not also "unknown" in a service.
  const e2 = reject(cfg({ backends: 'backends: [{ name: web1, ip: 10.0.1 }, { name: web2, ip: 10.0.1.22 }]' }));
  t.equal(e2.errors.length, 1, e2.message);

  // The message lists at most 20 problems; .errors keeps them all.
  const big = 'mac: "02:00:5e:00:00:01"\nvips:\n' + Array.from({ length: 30 }, (_, i) => `  - 10.0.0.${300 + i}`).join('\n');
  const e3 = reject(big);
  t.equal(e3.errors.length, 30);
  t.equal(e3.message.split('\n').length, 21);
  t.match(e3.message, /\.\.\. and 10 more problems$/);
});

t.test('durations', async (t) => {
  const cases: [unknown, number | null][] = [
    [15, 15_000], [0.5, 500], [0.1, 100], [0, 0], ['500ms', 500], ['15s', 15_000], ['5m', 300_000], ['1h', 3_600_000],
    ['1.5s', 1500], ['2.5m', 150_000], [' 15 s ', 15_000],
    ['1.5ms', null], [0.0001, null], ['15', null], ['15sec', null], ['1d', null], ['-1s', null], [-1, null],
    ['abc', null], ['', null], [Number.NaN, null], [Number.POSITIVE_INFINITY, null], ['1e3s', null], [null, null], [true, null],
  ];
  for (const [input, want] of cases) t.equal(parseDuration(input), want, JSON.stringify(input));
  t.equal(formatDuration(900_000), '15m');
  t.equal(formatDuration(15_000), '15s');
  t.equal(formatDuration(7_200_000), '2h');
  t.equal(formatDuration(1500), '1500ms');

  const c = parseConfig(cfg({ extra: ['flows: { half_open_timeout: 10, established_timeout: "1h", closing_timeout: 500ms }', 'neighbours: { ttl: 1.5 }'] }));
  t.strictSame([c.flows.halfOpenTimeoutMs, c.flows.establishedTimeoutMs, c.flows.closingTimeoutMs, c.neighbours.ttlMs], [10_000, 3_600_000, 500, 1500]);
});

t.test('example configs load', async (t) => {
  for (const mode of ['dsr', 'nat'] as const) {
    const file = path.join(configsDir, `replay-${mode}.yaml`);
    const c = loadConfig(file);
    const want = expectedExample(file, mode);
    // The example files have comments above each section, so lines differ from the inline one.
    t.strictSame({ ...c, services: c.services.map((s) => ({ ...s, line: 0 })) },
      { ...want, services: want.services.map((s) => ({ ...s, line: 0 })) }, `replay-${mode}.yaml`);
    const text = fs.readFileSync(file, 'utf8').split('\n');
    for (const s of c.services) t.match(text[s.line - 1], `vip: ${s.vipText}`, 'service line points at its entry');
    const summary = describeConfig(c);
    t.match(summary, `mode ${mode}, mac 02:00:5e:00:00:01`);
    t.match(summary, '2 VIPs: 10.0.0.100, 10.0.0.101');
    t.match(summary, '10.0.0.100 (IP mode) -> web1');
    t.match(summary, '10.0.0.101:80 -> web1, standby web2');
  }
});

t.test('describeConfig', async (t) => {
  const c = parseConfig('mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100, 10.0.0.7]\nbackends: [{ name: a, ip: 10.0.1.1 }]\nservices: [{ vip: 10.0.0.100, backend: a }]\n', 'd.yaml');
  const s = describeConfig(c);
  t.match(s, /^config d\.yaml: mode dsr, mac 02:00:5e:00:00:01, no interface \(vipgate run then needs --interface\)\n/);
  t.match(s, '1 backend: a 10.0.1.1 (mac by ARP)');
  t.match(s, '1 service:');
  t.match(s, 'no service (ARP only, TCP dropped): 10.0.0.7');
  t.match(s, 'flows: capacity 65536, timeouts half-open 15s, established 15m, closing 30s');
  t.match(s, 'neighbours: capacity 4096, ttl 5m');
  t.match(describeConfig(parseConfig('vips: [10.0.0.1]', 'x', { requireMac: false })), 'mac (from the NIC; replay needs mac:)');
});

t.test('loadConfig I/O errors', async (t) => {
  const dir = t.testdir({
    'bad-utf8.yaml': Buffer.from([0x6d, 0x61, 0x63, 0x3a, 0x20, 0xff, 0xfe, 0x0a]),
    'broken.yaml': 'mac: "02:00:5e:00:00:01"\nvips: [10.0.0.300]\n',
    sub: {},
  });
  const missing = path.join(dir, 'nope.yaml');
  let e = catchConfig(() => loadConfig(missing));
  t.equal(e.code, ConfigErrorCode.IO);
  t.equal(e.file, missing);
  t.equal(e.line, null);
  t.equal(e.message, `${missing}: cannot read config file: no such file (ENOENT); check the path`);

  e = catchConfig(() => loadConfig(path.join(dir, 'sub')));
  t.equal(e.code, ConfigErrorCode.IO);
  t.match(e.message, 'it is a directory (EISDIR)');

  e = catchConfig(() => loadConfig(''));
  t.equal(e.code, ConfigErrorCode.IO);

  e = catchConfig(() => loadConfig(path.join(dir, 'bad-utf8.yaml')));
  t.equal(e.code, ConfigErrorCode.SYNTAX);
  t.match(e.message, 'not valid UTF-8');

  const broken = path.join(dir, 'broken.yaml');
  e = catchConfig(() => loadConfig(broken));
  t.equal(e.code, ConfigErrorCode.INVALID);
  t.equal(e.message.split('\n')[0], `${broken}:2:8: vips[0]: "10.0.0.300" is not an IPv4 address (expected dotted quad like 10.0.0.100)`);
});

function catchConfig(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

// ---------------------------------------------------------------------------------------------
// Fuzz: nothing but ConfigError, and every problem located.


const KEYS = ['mac', 'mode', 'vips', 'backends', 'services', 'flows', 'neighbours', 'interface', 'name', 'ip', 'vip',
  'backend', 'port', 'active', 'standby', 'capacity', 'ttl', 'half_open_timeout', 'established_timeout', 'closing_timeout', 'x',
  'cluster', 'node', 'peers', 'address', 'key_file', 'heartbeat', 'dead_after', 'preempt', 'prefer', 'placement'];
const STRINGS = ['10.0.0.100', '10.0.0.101', '10.0.1.21', '02:00:5e:00:00:01', 'lb-a', 'lb-b', 'least_loaded', '01:00:00:00:00:00', 'web1', 'web2', 'dsr',
  'nat', '15s', '500ms', '1h', '', ' ', '0.0.0.0', '255.255.255.255', '::1', 'eth0', '\u0000', '\ud800', '*', '&a', '!!binary',
  'a'.repeat(200), '__proto__', 'constructor', 'toString', 'hasOwnProperty'];
const NUMBERS = [0, 1, -1, 80, 65535, 65536, 0.5, 1e21, -0, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 16777216, 1e-7];

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 4 : 7));
  switch (k) {
    case 0: return STRINGS[Math.floor(r() * STRINGS.length)];
    case 1: return NUMBERS[Math.floor(r() * NUMBERS.length)];
    case 2: return r() < 0.5 ? null : r() < 0.5;
    case 3: return String.fromCharCode(...Array.from({ length: Math.floor(r() * 8) }, () => Math.floor(r() * 0x3000)));
    case 4:
    case 5: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) o[KEYS[Math.floor(r() * KEYS.length)]!] = randomValue(r, depth + 1);
      return o;
    }
    default: return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  }
}

/** The example as an object, with random parts replaced or removed. */
function mutateExample(r: () => number): unknown {
  const base: Record<string, unknown> = {
    mac: '02:00:5e:00:00:01', mode: 'dsr', vips: ['10.0.0.100', '10.0.0.101'],
    backends: [{ name: 'web1', ip: '10.0.1.21', mac: '02:00:00:00:01:21' }, { name: 'web2', ip: '10.0.1.22' }],
    services: [{ vip: '10.0.0.100', backend: 'web1' }, { vip: '10.0.0.101', port: 80, active: 'web1', standby: ['web2'] }],
    flows: { capacity: 1000, half_open_timeout: '15s' }, neighbours: { ttl: 300 },
  };
  // Half the runs with a cluster and VIPs written as mappings (issue 11).
  if (r() < 0.5) {
    base.vips = ['10.0.0.100', { ip: '10.0.0.101', prefer: 'lb-b', placement: 'least_loaded' }];
    base.cluster = { node: 'lb-a', peers: [{ name: 'lb-a', address: '10.0.0.2' }, { name: 'lb-b', address: '10.0.0.3' }], key_file: '/k', heartbeat: '100ms', dead_after: '400ms' };
  }
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    // Walk to a random container and change one thing in it.
    let cur: unknown = base;
    for (let d = 0; d < 3 && cur && typeof cur === 'object' && r() < 0.7; d++) {
      const keys = Object.keys(cur as object);
      if (!keys.length) break;
      const next = (cur as Record<string, unknown>)[keys[Math.floor(r() * keys.length)]!];
      if (next && typeof next === 'object') cur = next;
      else break;
    }
    if (!cur || typeof cur !== 'object') continue;
    const obj = cur as Record<string, unknown>;
    const keys = Object.keys(obj);
    const key = r() < 0.8 && keys.length ? keys[Math.floor(r() * keys.length)]! : KEYS[Math.floor(r() * KEYS.length)]!;
    if (r() < 0.2) delete obj[key];
    else obj[key] = randomValue(r, 2);
  }
  return base;
}

t.test('fuzz: random YAML, JSON, text and bytes only ever throw ConfigError, always located', async (t) => {
  const r = mulberry32(0x5eed);
  let runs = 0;
  let parsed = 0;
  const failures: string[] = [];
  const check = (text: string, what: string) => {
    runs++;
    try {
      parseConfig(text, 'fuzz.yaml');
      parsed++;
    } catch (e) {
      if (!(e instanceof ConfigError)) {
        failures.push(`${what}: threw ${String(e)} for ${JSON.stringify(text).slice(0, 300)}`);
      } else if (e.code === ConfigErrorCode.INTERNAL) {
        failures.push(`${what}: internal error ${e.message} for ${JSON.stringify(text).slice(0, 300)}`);
      } else if (e.errors.some((i) => typeof i.line !== 'number' || typeof i.column !== 'number' || i.line < 1 || i.column < 1)) {
        failures.push(`${what}: unlocated problem ${e.message} for ${JSON.stringify(text).slice(0, 300)}`);
      } else if (!e.message.split('\n').every((l) => l.startsWith('fuzz.yaml:'))) {
        failures.push(`${what}: message line without location: ${e.message}`);
      }
    }
  };

  for (let i = 0; i < 1500; i++) {
    const v = mutateExample(r);
    check(yamlStringify(v), 'mutated example (YAML)');
    check(JSON.stringify(v), 'mutated example (JSON)');
  }
  for (let i = 0; i < 1000; i++) {
    const v = randomValue(r, 0);
    check(yamlStringify(v) ?? '', 'random value (YAML)');
    check(JSON.stringify(v) ?? '', 'random value (JSON)');
  }
  const example = fs.readFileSync(path.join(configsDir, 'replay-dsr.yaml'), 'utf8');
  const alphabet = ' \n\t-:[]{},"\'#&*!|>%@`?0123456789.abcdefxyz';
  for (let i = 0; i < 1500; i++) {
    // Character-level edits of the example file.
    let s = example;
    const edits = 1 + Math.floor(r() * 4);
    for (let j = 0; j < edits; j++) {
      const at = Math.floor(r() * (s.length + 1));
      const c = alphabet[Math.floor(r() * alphabet.length)]!;
      const op = Math.floor(r() * 3);
      s = op === 0 ? s.slice(0, at) + c + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + c + s.slice(at + 1);
    }
    check(s, 'edited example');
  }
  for (let i = 0; i < 1000; i++) {
    const bytes = Buffer.from(Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256)));
    check(bytes.toString('latin1'), 'random bytes (latin1)');
    check(bytes.toString('utf8'), 'random bytes (utf8)');
    // Random bytes drawn from YAML's own punctuation get further into the parser.
    check(Array.from({ length: Math.floor(r() * 120) }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''), 'random YAML-ish text');
  }
  // Odd inputs from JavaScript callers.
  for (const odd of [undefined, null, 42, {}, [], Buffer.from('mac: x')]) {
    runs++;
    try {
      parseConfig(odd as unknown as string, 'fuzz.yaml');
      failures.push(`parsed a non-string: ${String(odd)}`);
    } catch (e) {
      if (!(e instanceof ConfigError) || e.code === ConfigErrorCode.INTERNAL) failures.push(`non-string ${String(odd)}: ${String(e)}`);
    }
  }

  t.strictSame(failures.slice(0, 5), [], `${failures.length} of ${runs} inputs broke the contract`);
  t.ok(parsed > 0, `some mutated configs are still valid (${parsed} of ${runs})`);
});
