// The cluster's config (issue 11, src/control/config/cluster.ts): the section with its defaults,
// vips entries as mappings with prefer/placement, every error at its line with what to do, the
// check-config summary, the cluster key (file or environment, every failure, the permission
// warning), and reload: a changed cluster: needs a restart, a changed VIP placement applies.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, loadConfig, describeConfig, ConfigError } from '../src/control/config';
import { loadClusterKey, keyFingerprint, CLUSTER_LIMITS, type ClusterConfig } from '../src/control/config/cluster';
import { loadRunSettings, describeRunSettings } from '../src/control/run-config';
import { Controller } from '../src/control/controller';
import { buildDataplane } from '../src/app/replay';
import { isVipgateError } from '../src/control/errors';

const BASE = `mac: "02:00:5e:00:00:01"
vips: ["10.0.0.99", { ip: 10.0.0.100, prefer: lb-b }, { ip: 10.0.0.101, placement: least_loaded }]
backends: [{ name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }]
services: [{ vip: 10.0.0.100, backend: web1 }]
`;
const CLUSTER = `cluster:
  node: lb-b
  peers:
    - { name: lb-a, address: 10.0.0.2 }
    - { name: lb-b, address: 10.0.0.3 }
    - { name: lb-c, address: 10.0.0.4 }
  key_file: /etc/vipgate/cluster.key
`;

function reject(text: string): ConfigError {
  try {
    parseConfig(text, 'c.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected a ConfigError for:\n${text}`);
}

t.test('the section, its defaults, and placements by VIP', async (t) => {
  const c = parseConfig(BASE + CLUSTER, 'c.yaml');
  t.same(c.cluster, {
    node: 'lb-b', self: 1,
    peers: [
      { name: 'lb-a', address: 0x0a000002, addressText: '10.0.0.2' },
      { name: 'lb-b', address: 0x0a000003, addressText: '10.0.0.3' },
      { name: 'lb-c', address: 0x0a000004, addressText: '10.0.0.4' },
    ],
    keyFile: '/etc/vipgate/cluster.key', heartbeatMs: 100, deadAfterMs: 400, preempt: true, port: 7411,
  });
  t.same(c.vips, [0x0a000063, 0x0a000064, 0x0a000065], 'mapped entries are VIPs like the others');
  t.same([...c.vipPlacement], [
    [0x0a000064, { prefer: 'lb-b', placement: 'priority' }],
    [0x0a000065, { prefer: null, placement: 'least_loaded' }],
  ], 'only non-default placements');
  const tuned = parseConfig(BASE + CLUSTER + '  heartbeat: 50ms\n  dead_after: 1s\n  preempt: false\n  port: 7500\n', 'c.yaml').cluster!;
  t.same([tuned.heartbeatMs, tuned.deadAfterMs, tuned.preempt, tuned.port], [50, 1000, false, 7500]);
  t.equal(parseConfig(BASE + CLUSTER + '  heartbeat: 250ms\n', 'c.yaml').cluster!.deadAfterMs, 1000, 'dead_after defaults to 4 x heartbeat');
  t.equal(parseConfig(BASE + CLUSTER.replace('  key_file: /etc/vipgate/cluster.key\n', ''), 'c.yaml').cluster!.keyFile, null, 'no key_file: the environment');
  const signed = parseConfig(BASE + CLUSTER.replace('10.0.0.4', '192.168.0.4'), 'c.yaml').cluster!;
  t.equal(signed.peers[2]!.address, 0xc0a80004 | 0, 'addresses are signed 32-bit');
  const plain = parseConfig(BASE.replace(/vips: .*\n/, 'vips: [10.0.0.100]\n'), 'p.yaml');
  t.same([plain.cluster, plain.vipPlacement.size], [null, 0], 'no cluster: a single node');
});

t.test('every error at its line, saying what to do', async (t) => {
  const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;
  const cases: Array<[string, string, string, RegExp]> = [
    // [what, yaml, the line's text, message]
    ['prefer without a cluster', BASE, 'prefer: lb-b', /vips\[1\]\.prefer: prefer places a VIP among the nodes of a cluster, and there is no cluster: section; add one/],
    ['prefer naming no peer', BASE.replace('prefer: lb-b', 'prefer: lb-z') + CLUSTER, 'prefer: lb-z', /vips\[1\]\.prefer: "lb-z" is not a node of the cluster \(peers: lb-a, lb-b, lb-c\); name one of them/],
    ['a bad placement', BASE.replace('least_loaded', 'random') + CLUSTER, 'placement: random', /vips\[2\]\.placement: "random" is not a placement; use priority .* or least_loaded/],
    ['a VIP mapping without ip', BASE.replace('{ ip: 10.0.0.100, prefer: lb-b }', '{ prefer: lb-b }') + CLUSTER, 'prefer: lb-b', /vips\[1\]\.ip: missing; give the VIP/],
    ['an unknown key in a VIP mapping', BASE.replace('prefer: lb-b', 'prefr: lb-b') + CLUSTER, 'prefr', /vips\[1\]\.prefr: unknown key \(did you mean "prefer"\?\)/],
    ['node not a peer', BASE + CLUSTER.replace('node: lb-b', 'node: lb-x'), 'node: lb-x', /cluster\.node: "lb-x" is not one of the peers \(lb-a, lb-b, lb-c\); list this node under peers too/],
    ['node missing', BASE + CLUSTER.replace('  node: lb-b\n', ''), 'peers:', /cluster\.node: missing; say which of the peers this node is/],
    ['one peer', BASE + 'cluster:\n  node: lb-a\n  peers: [{ name: lb-a, address: 10.0.0.2 }]\n', 'peers:', /cluster\.peers: 1 node; a cluster lists 2\.\.16 nodes, this one included \(for a single node, remove cluster:\)/],
    ['a name twice', BASE + CLUSTER.replace('name: lb-c', 'name: lb-a'), '10.0.0.4', /cluster\.peers\[2\]\.name: lb-a is listed twice \(also peers\[0\]\)/],
    ['an address twice', BASE + CLUSTER.replace('10.0.0.4', '10.0.0.3'), 'name: lb-c', /cluster\.peers\[2\]\.address: 10\.0\.0\.3 is already the address of peers\[1\]/],
    ['an address that is a VIP', BASE + CLUSTER.replace('10.0.0.4', '10.0.0.99'), 'name: lb-c', /cluster\.peers\[2\]\.address: 10\.0\.0\.99 is a VIP; a node's address is its own host address/],
    ['an address that is a backend', BASE + CLUSTER.replace('10.0.0.4', '10.0.1.21'), 'name: lb-c', /is the address of backend web1/],
    ['a loopback address', BASE + CLUSTER.replace('10.0.0.4', '127.0.0.1'), 'name: lb-c', /127\.0\.0\.1 is a loopback address .*; give the node's own unicast host address/],
    ['a bad address', BASE + CLUSTER.replace('10.0.0.4', '10.0.0.400'), 'name: lb-c', /"10\.0\.0\.400" is not an IPv4 address/],
    ['a bad name', BASE + CLUSTER.replace('name: lb-c', 'name: "lb c"'), 'lb c', /"lb c" is not a valid node name/],
    ['a peer without address', BASE + CLUSTER.replace(', address: 10.0.0.4', ''), 'name: lb-c', /cluster\.peers\[2\]\.address: missing; give the node's own host address/],
    ['heartbeat too fast', BASE + CLUSTER + '  heartbeat: 5ms\n', 'heartbeat:', /cluster\.heartbeat: 5ms is out of range; heartbeat must be 10ms\.\.10s/],
    ['heartbeat too slow', BASE + CLUSTER + '  heartbeat: 11s\n', 'heartbeat:', /cluster\.heartbeat: 11000ms is out of range/],
    ['dead_after under 2 heartbeats', BASE + CLUSTER + '  heartbeat: 100ms\n  dead_after: 150ms\n', 'dead_after:', /cluster\.dead_after: 150ms is shorter than 2 heartbeats \(200ms\): one lost heartbeat would declare a node dead; set dead_after to 200ms or more/],
    ['preempt not a boolean', BASE + CLUSTER + '  preempt: sometimes\n', 'preempt:', /cluster\.preempt: expected true or false/],
    ['port out of range', BASE + CLUSTER + '  port: 70000\n', 'port:', /cluster\.port: 70000 is out of range; cluster\.port \(the UDP port/],
    ['key_file a directory path', BASE + CLUSTER.replace('/etc/vipgate/cluster.key', '/etc/vipgate/'), 'key_file', /cluster\.key_file: key_file must be a file path/],
    ['an unknown key', BASE + CLUSTER + '  heartbeats: 1s\n', 'heartbeats:', /cluster\.heartbeats: unknown key \(did you mean "heartbeat"\?\)/],
    ['not a mapping', BASE + 'cluster: lb-a\n', 'cluster:', /cluster: expected a mapping like \{ node: lb-a, peers: /],
  ];
  for (const [what, text, needle, re] of cases) {
    const e = reject(text);
    t.match(e.message, re, what);
    t.equal(e.errors[0]!.line, lineOf(text, needle), `${what}: at line ${lineOf(text, needle)}`);
  }
  const many = `vips: [${Array.from({ length: CLUSTER_LIMITS.vips + 1 }, (_, i) => `"10.0.2.${i + 1}"`).join(', ')}]\n`;
  const noServices = BASE.replace(/vips: .*\n/, many).replace(/services: .*\n/, '');
  t.match(reject(noServices + CLUSTER).message, /vips: a cluster places at most 48 VIPs \(with the nat gateway\), and this config has 49: each heartbeat lists/);
  t.ok(parseConfig(noServices, 'c.yaml'), 'without a cluster there is no such bound');
});

t.test('check-config prints the cluster', async (t) => {
  const s = describeConfig(parseConfig(BASE + CLUSTER, 'c.yaml'));
  t.match(s, '  cluster: this node lb-b (priority 2 of 3), heartbeat 100ms, dead_after 400ms (raised by observed jitter and loss, up to 4000ms), preempt on, UDP port 7411');
  t.match(s, '    nodes in priority order: 1. lb-a 10.0.0.2, 2. lb-b 10.0.0.3 (this node), 3. lb-c 10.0.0.4');
  t.match(s, '    key: from key_file /etc/vipgate/cluster.key');
  t.match(s, '    VIP placement: 10.0.0.100 prefer lb-b; 10.0.0.101 least_loaded; every other VIP: priority');
  t.notMatch(describeConfig(parseConfig(BASE.replace(/vips: .*\n/, 'vips: [10.0.0.100]\n'), 'p.yaml')), /cluster/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-cluster-cfg-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'cluster.key');
  fs.writeFileSync(key, 'a-cluster-key-of-32-bytes-long!!\n', { mode: 0o600 });
  fs.chmodSync(key, 0o600);
  const file = path.join(dir, 'v.yaml');
  fs.writeFileSync(file, BASE + CLUSTER.replace('/etc/vipgate/cluster.key', key));
  const run = loadRunSettings(file, { env: {} });
  t.equal(run.clusterKey!.key.toString(), 'a-cluster-key-of-32-bytes-long!!');
  t.match(describeRunSettings(run), `    key: from key_file ${key}, 32 bytes, fingerprint ${keyFingerprint(run.clusterKey!.key)} (the same on every node)`);
  t.notMatch(describeRunSettings(run), /warning/);
  fs.chmodSync(key, 0o644);
  t.match(describeRunSettings(loadRunSettings(file, { env: {} })), `    warning: ${key} is readable by its group and others (mode 644); whoever reads it can move VIPs: chmod 600 ${key}`);
  t.throws(() => loadRunSettings(file, { env: { VIPGATE_CLUSTER_KEY: 'another-key-0123456789' } }), { code: 'ECLUSTER_KEY', message: new RegExp(`^${file.replace(/[.]/g, '\\.')}: both cluster\\.key_file`) }, 'check-config and run refuse a bad key, naming the file');
});

t.test('loadClusterKey: file or environment, every failure says what to do', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-cluster-key-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const c = (keyFile: string | null): ClusterConfig => ({ ...parseConfig(BASE + CLUSTER, 'c.yaml').cluster!, keyFile });
  const file = path.join(dir, 'k');
  fs.writeFileSync(file, 'sixteen-bytes-ok\r\n');
  fs.chmodSync(file, 0o600);
  t.same(loadClusterKey(c(file), {}), { key: Buffer.from('sixteen-bytes-ok'), warning: null }, 'a trailing newline (CRLF too) is not part of the key');
  const bin = Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x0a, 12, 13, 14, 15, 16, 17]);
  fs.writeFileSync(file, bin);
  t.same(loadClusterKey(c(file), {}).key, bin, 'the bytes are the key (a newline inside stays)');
  t.same(loadClusterKey(c(null), { VIPGATE_CLUSTER_KEY: 'an-environment-key-1234\n' }).key, Buffer.from('an-environment-key-1234'));
  const fails: Array<[string, () => unknown, RegExp]> = [
    ['neither', () => loadClusterKey(c(null), {}), /no cluster key: set cluster\.key_file, or \$VIPGATE_CLUSTER_KEY; generate one with: head -c 32 \/dev\/urandom/],
    ['an empty variable is unset', () => loadClusterKey(c(null), { VIPGATE_CLUSTER_KEY: '' }), /no cluster key/],
    ['both', () => loadClusterKey(c(file), { VIPGATE_CLUSTER_KEY: 'x'.repeat(20) }), /both cluster\.key_file .* and \$VIPGATE_CLUSTER_KEY give a cluster key; keep one/],
    ['missing file', () => loadClusterKey(c(path.join(dir, 'nope')), {}), /cannot read cluster\.key_file .*nope: no such file \(ENOENT\); generate one/],
    ['a directory', () => loadClusterKey(c(dir), {}), /it is a directory \(EISDIR\)/],
    ['too short in the environment', () => loadClusterKey(c(null), { VIPGATE_CLUSTER_KEY: 'short' }), /the cluster key in \$VIPGATE_CLUSTER_KEY is 5 bytes; it needs at least 16/],
    ['too short in a file', () => { fs.writeFileSync(path.join(dir, 's'), '0123456789abcde\n'); return loadClusterKey(c(path.join(dir, 's')), {}); }, /is 15 bytes; it needs at least 16/],
  ];
  for (const [what, f, re] of fails) {
    let err: unknown = null;
    try { f(); } catch (e) { err = e; }
    t.ok(isVipgateError(err) && err.code === 'ECLUSTER_KEY', `${what}: ECLUSTER_KEY`);
    t.match((err as Error | null)?.message, re, what);
  }
  t.test('an unreadable key file', { skip: process.getuid?.() === 0 ? 'running as root, which reads any file' : false }, async (t) => {
    const locked = path.join(dir, 'locked');
    fs.writeFileSync(locked, 'x'.repeat(32), { mode: 0o000 });
    t.throws(() => loadClusterKey(c(locked), {}), { code: 'ECLUSTER_KEY', message: /permission denied \(EACCES\)/ });
  });
  fs.chmodSync(file, 0o640);
  t.match(loadClusterKey(c(file), {}).warning, /readable by its group \(mode 640\).*chmod 600/);
  fs.chmodSync(file, 0o604);
  t.match(loadClusterKey(c(file), {}).warning, /readable by others \(mode 604\)/);
  t.equal(keyFingerprint(Buffer.from('a')), keyFingerprint(Buffer.from('a')));
  t.not(keyFingerprint(Buffer.from('a')), keyFingerprint(Buffer.from('b')));
  t.equal(keyFingerprint(Buffer.from('a')).length, 16);
});

t.test('reload: a changed cluster: needs a restart; VIP placement may change', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-cluster-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'v.yaml');
  fs.writeFileSync(file, BASE + CLUSTER);
  const config = loadConfig(file);
  const c = new Controller({ config, port: buildDataplane(config).port, mac: config.mac!, stateFile: null });
  fs.writeFileSync(file, BASE + CLUSTER + '  heartbeat: 200ms\n');
  t.throws(() => c.reload(), { message: /cluster changed; that takes a restart.*Nothing was changed: revert it, or restart vipgate/ });
  fs.writeFileSync(file, BASE + CLUSTER.replace('node: lb-b', 'node: lb-a'));
  t.throws(() => c.reload(), { message: /cluster changed; that takes a restart/ });
  fs.writeFileSync(file, BASE.replace(/vips: .*\n/, 'vips: [10.0.0.99, 10.0.0.100, 10.0.0.101]\n'));
  t.throws(() => c.reload(), { message: /cluster changed; that takes a restart/ }, 'removing the section too');
  fs.writeFileSync(file, BASE.replace('prefer: lb-b', 'prefer: lb-c') + CLUSTER);
  const r = c.reload();
  t.same(r.changes, ['~ vip placement 10.0.0.100 prefer lb-b priority, 10.0.0.101 least_loaded -> 10.0.0.100 prefer lb-c priority, 10.0.0.101 least_loaded']);
  t.same(c.vipPlacement().get(0x0a000064), { prefer: 'lb-c', placement: 'priority' }, 'the new placement is the config now');
  t.same(c.reload().changes, [], 'the same again: no changes');
});
