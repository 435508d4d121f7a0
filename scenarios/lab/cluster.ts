// Issue 11's cluster lab: N vipgate nodes on the one bridge (createLab({ nodes: N }): namespaces
// <prefix>-lb1..lbN at 10.77.0.2..), each running `vipgate run` with a `cluster:` section, and the
// failures the lab checks and the benchmark apply to them:
//   - SIGKILL a node (its supervisor and its packet worker together: the node is gone at once),
//   - SIGSTOP / SIGCONT a node (frozen: it neither forwards nor sends heartbeats, then wakes up
//     believing what it believed before),
//   - cut a node's link and restore it (its bridge port down: the cable pulled; the node's own
//     interface stays up, so nothing inside it notices but silence),
//   - partition the heartbeat path (nftables in the nodes' namespaces dropping UDP to and from
//     the cluster port between groups of nodes) and heal it.
// The forged / replayed datagram tools are in cluster-wire.ts; keepalived's side of the benchmark
// in keepalived.ts. The workload is continuity.ts's (paced downloads checked byte for byte and
// keep-alive connections), so "connections continue through the next node" is measured exactly
// as issue 9 measured a worker crash.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import type { Lab } from './lab';
import { startVipgate, VIPGATE_BIN, type VipgateProc } from './vipgate';
import { continuityConfigYaml, waitGone } from './continuity';
import type { ClusterView } from '../../src/control/api-types';
import { tableName as kernelFilterTable } from '../../src/control/kernel-filter';

/** The cluster's UDP port (cluster.port's default). */
export const CLUSTER_PORT = 7411;

export interface ClusterSettings {
  heartbeat?: string;
  deadAfter?: string;
  preempt?: boolean;
  /** Extra top-level config lines (health checks, ...). */
  extra?: string;
}

/** Node names in priority order: lb-1 highest. */
export const nodeName = (i: number): string => `lb-${i + 1}`;

/** The `cluster:` section for node i (0-based) of the lab, with the key in keyFile. */
export function clusterSection(lab: Lab, i: number, keyFile: string, s: ClusterSettings = {}): string {
  if (i < 0 || i >= lab.ns.nodes.length) throw new Error(`cluster: node ${i} is not one of the lab's ${lab.ns.nodes.length} nodes`);
  return [
    'cluster:',
    `  node: ${nodeName(i)}`,
    '  peers:',
    ...lab.addr.nodes.map((a, j) => `    - { name: ${nodeName(j)}, address: ${a} }`),
    `  key_file: ${keyFile}`,
    `  heartbeat: ${s.heartbeat ?? '100ms'}`,
    s.deadAfter ? `  dead_after: ${s.deadAfter}` : '',
    `  preempt: ${s.preempt ?? true}`,
    `  port: ${CLUSTER_PORT}`,
  ].filter((l) => l !== '').join('\n');
}

/** The continuity workload's config (continuity.ts) plus node i's cluster section. */
export function clusterConfigYaml(lab: Lab, i: number, keyFile: string, s: ClusterSettings = {}): string {
  return continuityConfigYaml(lab, [clusterSection(lab, i, keyFile, s), s.extra ?? ''].filter(Boolean).join('\n'));
}

/** A fresh 32-byte cluster key in a 0600 file under a new temporary directory; remove() deletes both. */
export function writeClusterKey(): { file: string; key: Buffer; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-cluster-key-'));
  const file = path.join(dir, 'cluster.key');
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, key, { mode: 0o600 });
  return { file, key, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * nat: an on-link route to the backends' subnet in every node (on=true), so that each node's own
 * probes (health checks, the SYN-time check) reach the backends whichever node owns the gateway;
 * on=false removes it (keepalived's master gets that route with the gateway address instead).
 */
export function routeNodesToBackends(lab: Lab, on = true): void {
  if (lab.mode !== 'nat') return;
  const net = lab.addr.backends[0]!.replace(/\.\d+$/, '.0/24');
  for (const ns of lab.ns.nodes) {
    const r = lab.exec(ns, ['ip', 'route', on ? 'replace' : 'del', net, 'dev', 'eth0']);
    if (r.code !== 0 && on) throw new Error(`ip route replace ${net} in ${ns}: ${r.stderr.trim()}`);
  }
}

/**
 * Why this build cannot run the cluster lab, or null when it can: its config must accept a
 * `cluster:` section (`vipgate check-config`), and `vipgate run` must serve GET /v1/cluster.
 * Starts node 1 alone for the second question and stops it.
 */
export async function clusterSupport(lab: Lab): Promise<string | null> {
  const key = writeClusterKey();
  try {
    const yaml = clusterConfigYaml(lab, 0, key.file);
    const cfg = path.join(path.dirname(key.file), 'vipgate.yaml');
    fs.writeFileSync(cfg, yaml);
    const r = lab.exec(lab.ns.nodes[0]!, [process.execPath, VIPGATE_BIN, 'check-config', cfg]);
    if (r.code !== 0) {
      const line = (r.stderr + r.stdout).split('\n').find((l) => /cluster/.test(l)) ?? (r.stderr + r.stdout).trim().split('\n')[0];
      return `this build refuses a cluster: section (issue 11's config, branch clcore): ${(line ?? '').trim().slice(0, 200)}`;
    }
    const node = await startNode(lab, 0, yaml);
    try {
      const c = node.vg!.api('GET', '/v1/cluster');
      if (c.status === 404) return 'vipgate run has no cluster runtime: GET /v1/cluster answers 404 (issue 11\'s runtime, branch clnode)';
      if (c.status !== 200) return `GET /v1/cluster answers ${c.status}: ${c.text.slice(0, 200)}`;
    } finally {
      await node.vg!.stop();
    }
    return null;
  } finally {
    key.remove();
  }
}

export interface ClusterNode {
  index: number;
  name: string;
  ns: string;
  address: string;
  mac: string;
  yaml: string;
  vg: VipgateProc | null;
}

/** Start node i's vipgate with `yaml` in its namespace. */
export async function startNode(lab: Lab, i: number, yaml: string): Promise<ClusterNode> {
  const vg = await startVipgate(lab, yaml, [], { ns: lab.ns.nodes[i]! });
  return { index: i, name: nodeName(i), ns: lab.ns.nodes[i]!, address: lab.addr.nodes[i]!, mac: lab.mac.nodes[i]!, yaml, vg };
}

/**
 * PIDs that make up a running vipgate: its supervisor and its children (the packet worker), read
 * from /proc rather than asked of its API, which may be slow to answer on a loaded machine (a
 * worker left out would keep forwarding after the "kill").
 */
export function nodePids(vg: VipgateProc): number[] {
  const kids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === vg.pid) kids.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return [vg.pid, ...kids];
}

/**
 * SIGKILL the node's supervisor and packet worker back to back (the worker would otherwise
 * keep forwarding until it notices its supervisor is gone): the node dies as a box would.
 * Returns the wall-clock time of the kill.
 */
export async function killNode(node: ClusterNode): Promise<number> {
  const vg = node.vg;
  if (!vg) throw new Error(`${node.name} is not running`);
  const pids = nodePids(vg);
  const at = Date.now();
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const pid of pids) await waitGone(pid, 5000);
  await vg.stop();
  node.vg = null;
  return at;
}

/**
 * Remove what SIGKILLed vipgates left in the nodes' kernels: their kernel filter (the nftables
 * table that makes the host ignore VIP traffic; vipgate's next start replaces it), so that
 * something else (the benchmark's keepalived) can use the nodes afterwards.
 */
export function removeLeftovers(lab: Lab): void {
  for (const ns of lab.ns.nodes) lab.exec(ns, ['nft', 'delete', 'table', 'netdev', kernelFilterTable('eth0')]);
}

/** SIGSTOP (frozen) or SIGCONT (thawed) the node's supervisor and worker. */
export function freezeNode(node: ClusterNode, frozen: boolean, pids?: number[]): number[] {
  if (!node.vg) throw new Error(`${node.name} is not running`);
  // While frozen the API does not answer: the caller keeps the PIDs it froze to thaw them.
  const all = pids ?? nodePids(node.vg);
  for (const pid of all) process.kill(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
  return all;
}

/** Cut (up=false) or restore node i's link: its bridge port, in the switch namespace. */
export function setNodeLink(lab: Lab, i: number, up: boolean): void {
  const port = lab.ns.nodes[i]!.slice(lab.prefix.length + 1); // lb1
  const r = lab.exec(lab.ns.switch, ['ip', 'link', 'set', 'dev', port, up ? 'up' : 'down']);
  if (r.code !== 0) throw new Error(`ip link set ${port} ${up ? 'up' : 'down'}: ${r.stderr.trim()}`);
}

const PARTITION_TABLE = 'vipgate_lab_partition';

/**
 * Partition the heartbeat path: nodes in different groups no longer hear each other on the
 * cluster port (UDP dropped both ways, in and out, in every node's namespace); the data path is
 * untouched. Nodes in no group are cut off from everyone. heal() removes it.
 */
export function partition(lab: Lab, groups: number[][]): void {
  const groupOf = new Map<number, number>();
  groups.forEach((g, gi) => g.forEach((i) => groupOf.set(i, gi)));
  lab.ns.nodes.forEach((ns, i) => {
    const others = lab.addr.nodes.filter((_, j) => j !== i && (groupOf.get(j) === undefined || groupOf.get(j) !== groupOf.get(i)));
    if (others.length === 0) return;
    const set = `{ ${others.join(', ')} }`;
    const script = [
      `table inet ${PARTITION_TABLE} {`,
      `  chain in { type filter hook input priority -300; ip saddr ${set} udp dport ${CLUSTER_PORT} drop; ip saddr ${set} udp sport ${CLUSTER_PORT} drop; }`,
      `  chain out { type filter hook output priority -300; ip daddr ${set} udp dport ${CLUSTER_PORT} drop; ip daddr ${set} udp sport ${CLUSTER_PORT} drop; }`,
      '}',
    ].join('\n') + '\n';
    const r = lab.exec(ns, ['nft', '-f', '-'], { input: script });
    if (r.code !== 0) throw new Error(`nft partition in ${ns}: ${r.stderr.trim()}`);
  });
}

/** Remove every partition table (no error where there is none). */
export function heal(lab: Lab): void {
  for (const ns of lab.ns.nodes) lab.exec(ns, ['nft', 'delete', 'table', 'inet', PARTITION_TABLE]);
}

/** Index of the node whose MAC this is, or -1. */
export function nodeOfMac(lab: Lab, mac: string): number {
  return lab.mac.nodes.indexOf(mac.toLowerCase());
}

// ---- what the node says: GET /v1/cluster ----------------------------------------------------------

/** GET /v1/cluster on a node (throws unless 200). */
export function clusterView(vg: VipgateProc): ClusterView {
  const r = vg.api('GET', '/v1/cluster');
  if (r.status !== 200) throw new Error(`GET /v1/cluster: ${r.status} ${r.text.slice(0, 200)}`);
  return r.json as ClusterView;
}

/** Every message the node refused, over all reasons. */
export function rejectedTotal(view: ClusterView): number {
  return Object.values(view.rejected ?? {}).reduce((a, b) => a + b, 0);
}

/** The state (self, unknown, alive, dead) the view gives node `name`, or null when it does not list it. */
export function peerState(view: ClusterView, name: string): string | null {
  return view.nodes?.find((n) => n.name === name)?.state ?? null;
}

/** Owner per VIP (and the nat gateway) as the view computes it. */
export function viewOwners(view: ClusterView): Record<string, string | null> {
  return Object.fromEntries((view.vips ?? []).map((v) => [v.vip, v.owner]));
}
