// keepalived's VRRP in the cluster lab, for the side-by-side benchmark (bench/cluster.bench.ts):
// Debian's keepalived run in each lb namespace with its own config and pid files, `--vrrp` only,
// `--dont-fork`, the VIPs (and in nat the backends' gateway 10.77.1.1) as VRRP virtual addresses
// of one instance, lb1 highest priority. keepalived only moves addresses; the forwarding is the
// kernel's, set up the same on every node (only the master receives traffic, since only it
// answers ARP for the addresses):
//   nat  nftables DNAT in prerouting (VIP 1, every port -> web1; VIP 2 tcp/8080 -> web2, as
//        vipgate's config), ip_forward on, ICMP redirects off (the master forwards back out of
//        the interface it received on; a redirect would send the backends' replies around the
//        un-NAT). No conntrackd: a new master has no conntrack entries for existing flows.
//   dsr  nftables in the netdev ingress hook: a frame for a VIP addressed to this node's MAC gets
//        the backend's MAC as destination and the node's as source and is sent back out of eth0
//        (`fwd`), before the IP stack: the same stateless MAC rewrite vipgate's dsr does, and the
//        backends answer the clients directly. (IPVS in DR mode would be keepalived's own way, but
//        it needs the ip_vs module loaded into the shared host kernel; this needs nothing more.)
// A node "dies" as a box does: its bridge port goes down and keepalived's processes are SIGKILLed
// at the same instant; its leftovers (addresses, nftables table) are removed before the port
// comes back. Killing keepalived alone would leave its kernel forwarding for the VIPs (and
// answering ARP for them) forever: a SIGKILLed keepalived removes nothing.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Lab } from './lab';
import { CONTINUITY_PORT } from './continuity';
import { waitGone } from './continuity';
import { setNodeLink } from './cluster';

/** The VRRP timing of one run: advert interval in seconds, VRRP version (3 for sub-second). */
export interface VrrpTiming { advertInt: number; version: 2 | 3 }

/** keepalived's default (advert_int 1, VRRPv2) and its fastest: VRRPv3's 10 ms (one centisecond). */
export const VRRP_DEFAULT: VrrpTiming = { advertInt: 1, version: 2 };
export const VRRP_FASTEST: VrrpTiming = { advertInt: 0.01, version: 3 };

const NFT_TABLE = 'vgbench';

/** The keepalived binary, installing Debian's package if it is missing; null when it cannot be had. */
export function ensureKeepalived(log: (s: string) => void): string | null {
  const find = () => spawnSync('sh', ['-c', 'command -v keepalived'], { encoding: 'utf8' });
  let have = find();
  if (have.status === 0) return have.stdout.trim();
  log('keepalived is not installed: apt-get install -y keepalived');
  const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'keepalived'], { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) { log(`apt-get install keepalived failed: ${r.stderr.trim().split('\n').pop()}`); return null; }
  have = find();
  return have.status === 0 ? have.stdout.trim() : null;
}

/** Addresses keepalived moves: the VIPs, and in nat the backends' gateway (with its /24, so the master has the on-link route). */
function virtualAddresses(lab: Lab): string[] {
  return [...lab.addr.vips.map((v) => `${v}/32 dev eth0`), ...(lab.addr.gateway ? [`${lab.addr.gateway}/24 dev eth0`] : [])];
}

export function keepalivedConf(lab: Lab, i: number, t: VrrpTiming): string {
  const n = lab.ns.nodes.length;
  return [
    `# keepalived for ${lab.ns.nodes[i]} (${lab.mode}), written by scenarios/lab/keepalived.ts`,
    'global_defs {',
    `  router_id lb${i + 1}`,
    // Defaults, spelled out: the gratuitous ARPs a new master sends (5 at once, 5 more 5 s later).
    '  vrrp_garp_master_delay 5',
    '  vrrp_garp_master_repeat 5',
    `  vrrp_version ${t.version}`,
    '}',
    'vrrp_instance VG {',
    `  state ${i === 0 ? 'MASTER' : 'BACKUP'}`,
    '  interface eth0',
    '  virtual_router_id 77',
    `  priority ${250 - Math.round((200 * i) / Math.max(1, n - 1))}`,
    `  advert_int ${t.advertInt}`,
    '  virtual_ipaddress {',
    ...virtualAddresses(lab).map((a) => `    ${a}`),
    '  }',
    '}',
  ].join('\n') + '\n';
}

/** The kernel forwarding of node i for this lab's mode (see the top of this file). */
export function kernelForwarding(lab: Lab, i: number): string {
  const [v1, v2] = lab.addr.vips as [string, string];
  const [b1, b2] = lab.addr.backends as [string, string];
  if (lab.mode === 'nat') {
    return [
      `table ip ${NFT_TABLE} {`,
      '  chain pre {',
      '    type nat hook prerouting priority dstnat;',
      `    ip daddr ${v1} dnat to ${b1}`,
      `    ip daddr ${v2} tcp dport ${CONTINUITY_PORT} dnat to ${b2}`,
      `    ip daddr ${v2} tcp dport ${lab.httpPort} dnat to ${b2}`,
      '  }',
      '}',
    ].join('\n') + '\n';
  }
  const me = lab.mac.nodes[i]!;
  const [m1, m2] = lab.mac.backends as [string, string];
  return [
    `table netdev ${NFT_TABLE} {`,
    '  chain in {',
    '    type filter hook ingress device eth0 priority 0;',
    `    ether daddr ${me} ip daddr ${v1} ether saddr set ${me} ether daddr set ${m1} fwd to eth0`,
    `    ether daddr ${me} ip daddr ${v2} tcp dport { ${lab.httpPort}, ${CONTINUITY_PORT} } ether saddr set ${me} ether daddr set ${m2} fwd to eth0`,
    '  }',
    '}',
  ].join('\n') + '\n';
}

function sh(lab: Lab, ns: string, what: string, argv: string[], input?: string): void {
  const r = lab.exec(ns, argv, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${what} in ${ns}: ${r.stderr.trim() || r.stdout.trim()}`);
}

/** Install node i's kernel forwarding (and, in nat, ip_forward on and redirects off). */
export function setupKernelForwarding(lab: Lab, i: number): void {
  const ns = lab.ns.nodes[i]!;
  if (lab.mode === 'nat') {
    sh(lab, ns, 'sysctls', ['sh', '-ec', [
      'echo 1 > /proc/sys/net/ipv4/ip_forward',
      'echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects',
      'echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects',
    ].join('\n')]);
  }
  sh(lab, ns, 'nft (kernel forwarding)', ['nft', '-f', '-'], kernelForwarding(lab, i));
}

/** Undo setupKernelForwarding and drop any address keepalived left (after a SIGKILL it removes none). */
export function removeKernelForwarding(lab: Lab, i: number): void {
  // One shell, so that it takes milliseconds; each step may find nothing to remove.
  lab.exec(lab.ns.nodes[i]!, ['sh', '-c', [
    `nft delete table ${lab.mode === 'nat' ? 'ip' : 'netdev'} ${NFT_TABLE} 2>/dev/null`,
    ...virtualAddresses(lab).map((a) => `ip addr del ${a} 2>/dev/null`),
    lab.mode === 'nat' ? 'echo 0 > /proc/sys/net/ipv4/ip_forward' : '',
    'true',
  ].filter(Boolean).join('\n')]);
}

export interface KeepalivedNode {
  index: number;
  /** keepalived's parent (the process `ip netns exec` became) and its VRRP child. */
  pids(): number[];
  /** True once this node holds the VIPs (keepalived added them: it is master). */
  isMaster(): boolean;
  log(): string;
  /** SIGKILL both processes and remove the node's forwarding at once (the node dies). Returns the time of the kill. */
  kill(): Promise<number>;
  /** SIGTERM (keepalived removes its addresses), then remove the forwarding. */
  stop(): Promise<void>;
}

/** Start keepalived in node i's namespace with its own files; resolves once its VRRP child runs. */
export async function startKeepalived(lab: Lab, bin: string, i: number, t: VrrpTiming): Promise<KeepalivedNode> {
  const ns = lab.ns.nodes[i]!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `keepalived-${lab.prefix}-lb${i + 1}-`));
  const conf = path.join(dir, 'keepalived.conf');
  fs.writeFileSync(conf, keepalivedConf(lab, i, t));
  const check = lab.exec(ns, [bin, '--config-test', '-f', conf]);
  if (check.code !== 0) throw new Error(`keepalived refused ${conf}:\n${check.stderr}${check.stdout}`);
  setupKernelForwarding(lab, i);
  const pidFile = path.join(dir, 'keepalived.pid'), vrrpPid = path.join(dir, 'vrrp.pid');
  const child: ChildProcess = lab.spawn(ns, [bin, '--vrrp', '--dont-fork', '--log-console', '--no-syslog', '--dont-respawn',
    '-f', conf, '-p', pidFile, '-r', vrrpPid]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const readPid = (f: string): number | null => { try { const n = Number(fs.readFileSync(f, 'utf8').trim()); return n > 0 ? n : null; } catch { return null; } };
  const until = Date.now() + 10_000;
  while (readPid(vrrpPid) === null) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`keepalived in ${ns} exited (${child.exitCode ?? child.signalCode}):\n${out}`);
    if (Date.now() > until) throw new Error(`keepalived in ${ns}: no VRRP child within 10 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const pids = (): number[] => [child.pid!, readPid(vrrpPid)].filter((p): p is number => p !== null);
  const cleanup = (): void => { removeKernelForwarding(lab, i); fs.rmSync(dir, { recursive: true, force: true }); };
  let done = false;
  return {
    index: i,
    pids,
    isMaster(): boolean {
      const r = lab.exec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      return r.stdout.includes(` ${lab.addr.vips[0]}/32 `);
    },
    log: () => out,
    async kill(): Promise<number> {
      // The VRRP child before its parent: killed first, the parent would make the child (its
      // parent-death signal) leave gracefully, with a priority-0 advert that hands over at once.
      const all = pids().reverse();
      // The box vanishes from the wire first (its bridge port down), then its processes die;
      // the kill's time is taken once the port is down (before, probes still went through it).
      // While the port is down its leftovers are
      // removed: keepalived restores a VIP deleted under it, and a kernel holding a VIP without
      // the forwarding would answer clients' segments with resets, which a dead box never sends.
      setNodeLink(lab, i, false);
      const at = Date.now();
      for (const p of all) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
      for (const p of all) await waitGone(p, 5000);
      removeKernelForwarding(lab, i);
      setNodeLink(lab, i, true);
      done = true;
      fs.rmSync(dir, { recursive: true, force: true });
      return at;
    },
    async stop(): Promise<void> {
      if (done) return;
      done = true;
      const all = pids();
      for (const p of all) { try { process.kill(p, 'SIGTERM'); } catch { /* gone */ } }
      for (const p of all) await waitGone(p, 10_000).catch(() => { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } });
      cleanup();
    },
  };
}
