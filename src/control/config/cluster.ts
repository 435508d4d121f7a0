// The config section of issue 11 (a cluster of vipgate nodes): `cluster:` and the per-VIP keys
// `prefer` and `placement` (vips entries may be mappings { ip, prefer?, placement? }), and the
// cluster key (loadClusterKey: key_file, or $VIPGATE_CLUSTER_KEY). config.ts calls these with its
// checker; every problem is reported at its line like the rest of the file.
//
//   cluster:
//     node: lb-a                          # this node, one of the peers
//     peers:                              # priority order, highest first; 2..16
//       - { name: lb-a, address: 10.0.0.2 }
//       - { name: lb-b, address: 10.0.0.3 }
//     key_file: /etc/vipgate/cluster.key  # or VIPGATE_CLUSTER_KEY (exactly one of the two)
//     heartbeat: 100ms                    # 10ms .. 10s
//     dead_after: 400ms                   # default 4 x heartbeat, at least 2 x heartbeat
//     preempt: true
//     port: 7411                          # UDP, the same on every node

import { readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isMap } from 'yaml';
import { VipgateError } from '../errors';
import { formatIpv4 } from '../../wire/addr';
import { bool, type Entry, type SectionChecker } from './health';
import { MAX_TIMEOUT_FACTOR } from '../cluster/membership';

export interface ClusterPeer {
  name: string;
  /** Signed 32-bit, like every address on the packet path (10.0.0.2 === 0x0a000002 | 0). */
  address: number;
  addressText: string;
}

export interface VipPlacement {
  /** A peer's name, or null. */
  prefer: string | null;
  placement: 'priority' | 'least_loaded';
}

export interface ClusterConfig {
  node: string;
  /** Index of `node` in peers: its priority rank, 0 highest. */
  self: number;
  peers: ClusterPeer[];
  /** null: the key is in $VIPGATE_CLUSTER_KEY. */
  keyFile: string | null;
  heartbeatMs: number;
  deadAfterMs: number;
  preempt: boolean;
  port: number;
}

export const CLUSTER_KEYS = ['node', 'peers', 'key_file', 'heartbeat', 'dead_after', 'preempt', 'port'] as const;
export const PEER_KEYS = ['name', 'address'] as const;
export const VIP_KEYS = ['ip', 'prefer', 'placement'] as const;
export const PLACEMENTS = ['priority', 'least_loaded'] as const;

export const CLUSTER_DEFAULTS = { heartbeatMs: 100, deadAfterFactor: 4, preempt: true, port: 7411 };
export const CLUSTER_LIMITS = {
  peers: { min: 2, max: 16 },
  heartbeatMs: { min: 10, max: 10_000 },
  /** dead_after at least this many heartbeats: one lost heartbeat must not kill a peer. */
  deadAfterHeartbeats: 2,
  /** VIPs (with the nat gateway) a cluster places: a heartbeat lists those a node owns in one
   *  1472-byte datagram (wire.ts), with room left for the backends it sees down. */
  vips: 48,
  keyMinBytes: 16,
};

export const KEY_ENV = 'VIPGATE_CLUSTER_KEY';
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** What config.ts's checker offers beyond SectionChecker (structural: it passes itself). */
export interface ClusterChecker extends SectionChecker {
  ipv4(e: Entry): { ip: number; text: string } | undefined;
}

/** A vips entry written as a mapping, before the cluster is known. */
export interface VipEntry {
  ip: number;
  text: string;
  prefer: { name: string; at: Entry } | null;
  placement: VipPlacement['placement'];
  placementAt: Entry | null;
}

/** `{ ip, prefer?, placement? }`; undefined when it has errors (reported). */
export function parseVipMapping(ck: ClusterChecker, e: Entry): VipEntry | undefined {
  const m = ck.mapping(e, VIP_KEYS, 'a VIP like "10.0.0.100", or a mapping like { ip: 10.0.0.100, prefer: lb-b } or { ip: 10.0.0.101, placement: least_loaded }');
  if (!m) return undefined;
  let ok = true;
  let ip: { ip: number; text: string } | undefined;
  if (!m.ip) { ck.missing(e.node, `${e.path}.ip`, 'give the VIP, e.g. { ip: 10.0.0.100, prefer: lb-b }'); ok = false; }
  else { ip = ck.ipv4(m.ip); if (!ip) ok = false; }
  let prefer: VipEntry['prefer'] = null;
  if (m.prefer) {
    const n = ck.text(m.prefer, 'the name of a node from cluster.peers');
    if (n === undefined) ok = false; else prefer = { name: n, at: m.prefer };
  }
  let placement: VipPlacement['placement'] = 'priority';
  if (m.placement) {
    const p = ck.text(m.placement, 'priority or least_loaded');
    if (p === 'priority' || p === 'least_loaded') placement = p;
    else if (p !== undefined) { ck.fail(m.placement.at, m.placement.path, `${JSON.stringify(p)} is not a placement; use priority (the highest-priority live node, the default) or least_loaded (the live node with the fewest flows)`); ok = false; }
    else ok = false;
  }
  return ok && ip ? { ip: ip.ip, text: ip.text, prefer, placement, placementAt: m.placement ?? null } : undefined;
}

/** Check mapped vips entries against the cluster; the non-default placements by VIP (unsigned, like Config.vips). */
export function resolvePlacements(ck: SectionChecker, entries: readonly VipEntry[], cluster: ClusterConfig | null, clusterWritten: boolean): Map<number, VipPlacement> {
  const out = new Map<number, VipPlacement>();
  for (const v of entries) {
    if (!clusterWritten) {
      const at = v.prefer?.at ?? v.placementAt;
      if (at) ck.fail(at.at, at.path, `${at.path.slice(at.path.lastIndexOf('.') + 1)} places a VIP among the nodes of a cluster, and there is no cluster: section; add one (cluster: { node, peers, key_file }) or remove it`);
      continue;
    }
    if (v.prefer && cluster && !cluster.peers.some((p) => p.name === v.prefer!.name)) {
      ck.fail(v.prefer.at.at, v.prefer.at.path, `${JSON.stringify(v.prefer.name)} is not a node of the cluster (peers: ${cluster.peers.map((p) => p.name).join(', ')}); name one of them`);
      continue;
    }
    if (v.prefer || v.placement !== 'priority') out.set(v.ip, { prefer: v.prefer?.name ?? null, placement: v.placement });
  }
  return out;
}

/**
 * `cluster:`. `taken` maps addresses (unsigned) already used by VIPs, backends or the nat
 * gateway to what they are. `unusable` says why an address cannot be a host's (config.ts's rule).
 * null when absent or with errors (reported).
 */
export function parseCluster(ck: ClusterChecker, e: Entry | undefined, taken: ReadonlyMap<number, string>, unusable: (ip: number) => string | null): ClusterConfig | null {
  if (!e) return null;
  const m = ck.mapping(e, CLUSTER_KEYS, 'a mapping like { node: lb-a, peers: [{ name: lb-a, address: 10.0.0.2 }, { name: lb-b, address: 10.0.0.3 }], key_file: /etc/vipgate/cluster.key }');
  if (!m) return null;
  const before = ck.issues.length;

  const peers: ClusterPeer[] = [];
  let peersBroken = false;
  if (!m.peers) {
    ck.missing(e.node, 'cluster.peers', 'list every node, highest priority first, e.g. peers: [{ name: lb-a, address: 10.0.0.2 }, { name: lb-b, address: 10.0.0.3 }]');
    peersBroken = true;
  } else {
    const items = ck.list(m.peers, 'nodes', 'peers: [{ name: lb-a, address: 10.0.0.2 }, { name: lb-b, address: 10.0.0.3 }]');
    if (!items) peersBroken = true;
    else if (items.length < CLUSTER_LIMITS.peers.min || items.length > CLUSTER_LIMITS.peers.max) {
      ck.fail(m.peers.at, m.peers.path, `${items.length} node${items.length === 1 ? '' : 's'}; a cluster lists ${CLUSTER_LIMITS.peers.min}..${CLUSTER_LIMITS.peers.max} nodes, this one included (for a single node, remove cluster:)`);
    }
    const byName = new Map<string, number>(), byAddr = new Map<number, number>();
    items?.forEach((item, index) => {
      const p = ck.mapping(item, PEER_KEYS, 'a node like { name: lb-b, address: 10.0.0.3 }');
      if (!p) { peersBroken = true; return; }
      let name: string | undefined;
      if (!p.name) { ck.missing(item.node, `${item.path}.name`, 'name the node, e.g. name: lb-b (cluster.node and prefer: refer to it)'); peersBroken = true; }
      else {
        name = ck.text(p.name, 'a node name like lb-b');
        if (name === undefined) peersBroken = true;
        else if (!NAME_RE.test(name)) { ck.fail(p.name.at, p.name.path, `${JSON.stringify(name)} is not a valid node name; use 1-64 characters from A-Z a-z 0-9 _ . -`); name = undefined; }
        else if (byName.has(name)) { ck.fail(p.name.at, p.name.path, `${name} is listed twice (also peers[${byName.get(name)}]); each node once, in priority order`); name = undefined; }
        else byName.set(name, index);
      }
      let addr: { ip: number; text: string } | undefined;
      if (!p.address) ck.missing(item.node, `${item.path}.address`, 'give the node\'s own host address heartbeats go to, e.g. address: 10.0.0.3');
      else {
        addr = ck.ipv4(p.address);
        const why = addr ? unusable(addr.ip) : null;
        if (addr && why) { ck.fail(p.address.at, p.address.path, `${addr.text} ${why}; give the node's own unicast host address`); addr = undefined; }
        else if (addr && taken.has(addr.ip)) { ck.fail(p.address.at, p.address.path, `${addr.text} is ${taken.get(addr.ip)}; a node's address is its own host address (the kernel's, not one vipgate answers for), which stays put when VIPs move`); addr = undefined; }
        else if (addr && byAddr.has(addr.ip)) { ck.fail(p.address.at, p.address.path, `${addr.text} is already the address of peers[${byAddr.get(addr.ip)}]; each node has its own`); addr = undefined; }
        else if (addr) byAddr.set(addr.ip, index);
      }
      if (name !== undefined && addr) peers.push({ name, address: addr.ip | 0, addressText: addr.text });
    });
  }

  let node: string | undefined, self = -1;
  if (!m.node) ck.missing(e.node, 'cluster.node', `say which of the peers this node is, e.g. node: ${peers[0]?.name ?? 'lb-a'}`);
  else {
    node = ck.text(m.node, 'the name of this node, one of the peers');
    if (node !== undefined) {
      self = peers.findIndex((p) => p.name === node);
      if (self < 0 && !peersBroken) ck.fail(m.node.at, m.node.path, `${JSON.stringify(node)} is not one of the peers (${peers.map((p) => p.name).join(', ') || 'none'}); list this node under peers too, in its place in the priority order`);
    }
  }

  let keyFile: string | null = null;
  if (m.key_file) {
    const k = ck.text(m.key_file, 'the path of the file holding the cluster key, like /etc/vipgate/cluster.key');
    if (k !== undefined) {
      if (k === '' || k.endsWith('/')) ck.fail(m.key_file.at, m.key_file.path, 'key_file must be a file path like /etc/vipgate/cluster.key');
      else keyFile = k;
    }
  }

  const heartbeatMs = m.heartbeat ? ck.duration(m.heartbeat, CLUSTER_DEFAULTS.heartbeatMs) : CLUSTER_DEFAULTS.heartbeatMs;
  const hb = CLUSTER_LIMITS.heartbeatMs;
  if (m.heartbeat && (heartbeatMs < hb.min || heartbeatMs > hb.max)) {
    ck.fail(m.heartbeat.at, m.heartbeat.path, `${heartbeatMs}ms is out of range; heartbeat must be ${hb.min}ms..${hb.max / 1000}s (the default is ${CLUSTER_DEFAULTS.heartbeatMs}ms)`);
  }
  let deadAfterMs = CLUSTER_DEFAULTS.deadAfterFactor * heartbeatMs;
  if (m.dead_after) {
    deadAfterMs = ck.duration(m.dead_after, deadAfterMs);
    const min = CLUSTER_LIMITS.deadAfterHeartbeats * heartbeatMs;
    if (deadAfterMs < min) ck.fail(m.dead_after.at, m.dead_after.path, `${deadAfterMs}ms is shorter than ${CLUSTER_LIMITS.deadAfterHeartbeats} heartbeats (${min}ms): one lost heartbeat would declare a node dead; set dead_after to ${min}ms or more (the default is ${CLUSTER_DEFAULTS.deadAfterFactor} x heartbeat)`);
  }
  const preempt = m.preempt ? bool(ck, m.preempt, 'preempt: true gives a node that comes back its VIPs again once it has the flow state') ?? true : CLUSTER_DEFAULTS.preempt;
  const port = m.port ? ck.integer(m.port, 1, 65535, 'cluster.port (the UDP port of heartbeats and flow replication, the same on every node)') ?? CLUSTER_DEFAULTS.port : CLUSTER_DEFAULTS.port;

  if (ck.issues.length > before || node === undefined || self < 0) return null;
  return { node, self, peers, keyFile, heartbeatMs, deadAfterMs, preempt, port };
}

/** How many VIPs the cluster places is bounded (heartbeat size): checked by config.ts with the VIP count. */
export function checkClusterVips(ck: SectionChecker, e: Entry, placed: number): void {
  if (placed > CLUSTER_LIMITS.vips) {
    ck.fail(e.at, e.path, `a cluster places at most ${CLUSTER_LIMITS.vips} VIPs (with the nat gateway), and this config has ${placed}: each heartbeat lists the VIPs its node owns in one datagram; split them over several clusters`);
  }
}

/** Is this a vips entry written as a mapping? */
export function isVipMapping(e: Entry): boolean {
  return isMap(e.node);
}

/** The summary lines check-config prints for the cluster. */
export function describeCluster(c: ClusterConfig, placement: ReadonlyMap<number, VipPlacement>, key: KeyInfo | null): string[] {
  const out: string[] = [];
  out.push(`  cluster: this node ${c.node} (priority ${c.self + 1} of ${c.peers.length}), heartbeat ${c.heartbeatMs}ms, dead_after ${c.deadAfterMs}ms (raised by observed jitter and loss, up to ${MAX_TIMEOUT_FACTOR * c.deadAfterMs}ms), preempt ${c.preempt ? 'on' : 'off'}, UDP port ${c.port}`);
  out.push(`    nodes in priority order: ${c.peers.map((p, i) => `${i + 1}. ${p.name} ${p.addressText}${i === c.self ? ' (this node)' : ''}`).join(', ')}`);
  const src = c.keyFile !== null ? `key_file ${c.keyFile}` : `$${KEY_ENV}`;
  out.push(key ? `    key: from ${src}, ${key.bytes} bytes, fingerprint ${key.fingerprint} (the same on every node)` : `    key: from ${src}`);
  if (key?.warning) out.push(`    warning: ${key.warning}`);
  if (placement.size) {
    out.push(`    VIP placement: ${[...placement].map(([v, p]) => `${formatIpv4(v)} ${p.prefer !== null ? `prefer ${p.prefer}` : ''}${p.prefer !== null && p.placement !== 'priority' ? ', ' : ''}${p.placement !== 'priority' ? p.placement : ''}`).join('; ')}; every other VIP: priority`);
  } else {
    out.push('    VIP placement: priority (the highest-priority live node) for every VIP');
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The key

export interface ClusterKey {
  key: Buffer;
  /** A file readable by group or others: say so (the key lets anyone who has it move VIPs). */
  warning: string | null;
}

export interface KeyInfo { bytes: number; fingerprint: string; warning: string | null }

/**
 * The shared secret: key_file's bytes, or $VIPGATE_CLUSTER_KEY's (UTF-8), one trailing newline
 * stripped. Throws VipgateError 'ECLUSTER_KEY' saying what to do: no source or both, a file
 * missing or unreadable, a key shorter than 16 bytes. Returns { key, warning }.
 */
export function loadClusterKey(c: ClusterConfig, env: NodeJS.ProcessEnv = process.env): ClusterKey {
  const fromEnv = env[KEY_ENV];
  const hasEnv = fromEnv !== undefined && fromEnv !== '';
  const make = `generate one with: head -c 32 /dev/urandom | base64 > /etc/vipgate/cluster.key && chmod 600 /etc/vipgate/cluster.key, and copy it to every node`;
  if (c.keyFile !== null && hasEnv) {
    throw new VipgateError('ECLUSTER_KEY', `both cluster.key_file (${c.keyFile}) and $${KEY_ENV} give a cluster key; keep one: remove key_file from the config or unset ${KEY_ENV}`);
  }
  if (c.keyFile === null && !hasEnv) {
    throw new VipgateError('ECLUSTER_KEY', `no cluster key: set cluster.key_file, or $${KEY_ENV}; ${make}`);
  }
  let raw: Buffer;
  let warning: string | null = null;
  let where: string;
  if (c.keyFile !== null) {
    where = `cluster.key_file ${c.keyFile}`;
    try {
      raw = readFileSync(c.keyFile);
      const mode = statSync(c.keyFile).mode;
      if ((mode & 0o077) !== 0) warning = `${c.keyFile} is readable by ${(mode & 0o070) !== 0 ? 'its group' : ''}${(mode & 0o070) !== 0 && (mode & 0o007) !== 0 ? ' and ' : ''}${(mode & 0o007) !== 0 ? 'others' : ''} (mode ${(mode & 0o777).toString(8)}); whoever reads it can move VIPs: chmod 600 ${c.keyFile}`;
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      const why = code === 'ENOENT' ? `no such file (ENOENT); ${make}`
        : code === 'EACCES' || code === 'EPERM' ? `permission denied (${code}); make it readable by the user vipgate runs as (and by no one else: chmod 600)`
        : code === 'EISDIR' ? 'it is a directory (EISDIR); give the path of the key file'
        : `${(e as Error).message}`;
      throw new VipgateError('ECLUSTER_KEY', `cannot read ${where}: ${why}`, { cause: e });
    }
  } else {
    where = `$${KEY_ENV}`;
    raw = Buffer.from(fromEnv!, 'utf8');
  }
  let n = raw.length;
  if (n > 0 && raw[n - 1] === 0x0a) n--;
  if (n > 0 && raw[n - 1] === 0x0d) n--;
  const key = Buffer.from(raw.subarray(0, n));
  if (key.length < CLUSTER_LIMITS.keyMinBytes) {
    throw new VipgateError('ECLUSTER_KEY', `the cluster key in ${where} is ${key.length} bytes; it needs at least ${CLUSTER_LIMITS.keyMinBytes}: ${make}`);
  }
  return { key, warning };
}

/** A short fingerprint to compare keys between nodes without showing them. */
export function keyFingerprint(key: Uint8Array): string {
  return createHash('sha256').update('vipgate cluster key\0').update(key).digest('hex').slice(0, 16);
}

export function keyInfo(k: ClusterKey): KeyInfo {
  return { bytes: k.key.length, fingerprint: keyFingerprint(k.key), warning: k.warning };
}
