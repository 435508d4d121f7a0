// Keep the host's own kernel out of the traffic vipgate handles. Packet sockets (libpcap) see a
// frame before the netdev ingress hook, so an nftables rule there drops VIP traffic (and, in nat
// mode, backend replies) for the kernel only: vipgate has its copy already. Without it the
// kernel would also process every packet: forward it, answer with ICMP or RST, or burn CPU.
//
// The rule lives in its own table, `netdev vipgate_<iface>`, installed at start and deleted at
// exit (and replaced at start if a crashed run left one). Only the holder of the interface's
// instance lock may touch it (issue 12: a second vipgate that failed to start used to delete
// the first one's table): a KernelFilter is made from the lock and refuses to act without it.

import { execFileSync } from 'node:child_process';
import { VipgateError } from './errors';
import { formatIpv4 } from '../wire/addr';
import type { InstanceLock } from './instance-lock';

export interface KernelFilterSpec {
  iface: string;
  /** Addresses vipgate owns: VIPs and the nat gateway. Frames to them are dropped for the kernel. */
  owned: number[];
  /** nat: backend addresses whose replies vipgate rewrites; dropped unless to the host itself. */
  backends: number[];
  /** The host's own addresses on the NIC (traffic to them, e.g. the API, is left alone). */
  hostAddrs: number[];
}

export function tableName(iface: string): string {
  return 'vipgate_' + iface.replace(/[^A-Za-z0-9_]/g, '_');
}

export function ruleset(s: KernelFilterSpec): string {
  const set = (xs: number[]) => `{ ${xs.map(formatIpv4).join(', ')} }`;
  const lines = [
    `table netdev ${tableName(s.iface)} {`,
    `  chain ingress {`,
    `    type filter hook ingress device "${s.iface}" priority -500; policy accept;`,
  ];
  if (s.owned.length) lines.push(`    ip daddr ${set(s.owned)} counter drop comment "vipgate: VIP traffic is handled in userspace"`);
  if (s.backends.length) {
    const notHost = s.hostAddrs.length ? ` ip daddr != ${set(s.hostAddrs)}` : '';
    // ICMP too: a backend's error about a client's segment (e.g. fragmentation needed) is
    // rewritten back to the client by vipgate; the host kernel must not route a raw copy.
    lines.push(`    ip saddr ${set(s.backends)}${notHost} meta l4proto { tcp, icmp } counter drop comment "vipgate: nat replies are rewritten in userspace"`);
  }
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

function nft(args: string[], input?: string): void {
  execFileSync('nft', args, { input, stdio: ['pipe', 'ignore', 'pipe'], encoding: 'utf8' });
}

export class KernelFilter {
  private installed = false;
  constructor(public spec: KernelFilterSpec, private readonly lock: InstanceLock) {}

  /** A bug if it ever throws: run.ts makes the filter only after taking the lock, and removes it before releasing it. */
  private mustHoldLock(what: string): void {
    if (!this.lock.held) throw new VipgateError('EKERNEL_FILTER', `internal error: asked to ${what} the nftables table of ${this.spec.iface} without holding its instance lock ${this.lock.file}`);
  }

  /**
   * Replace the rule with one for new addresses (VIPs or backends changed at runtime), in one nft
   * transaction: the old rule holds until the new one is in. Throws VipgateError; the old rule stays then.
   */
  update(owned: number[], backends: number[]): void {
    this.mustHoldLock('replace');
    const next = { ...this.spec, owned, backends };
    const t = tableName(next.iface);
    try {
      nft(['-f', '-'], `table netdev ${t}\ndelete table netdev ${t}\n${ruleset(next)}`);
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      throw new VipgateError('EKERNEL_FILTER', `could not update the nftables rule on ${next.iface}: ${(err.stderr ?? err.message).trim()}; the previous rule stays`);
    }
    this.spec = next;
  }

  install(): void {
    this.mustHoldLock('install');
    // One nft transaction replaces a table left by a previous vipgate (killed, or the one an
    // upgrade took over from) with no moment in between where the host kernel sees VIP traffic:
    // `add` makes sure there is one to delete.
    const t = tableName(this.spec.iface);
    try {
      nft(['-f', '-'], `add table netdev ${t}\ndelete table netdev ${t}\n` + ruleset(this.spec));
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === 'ENOENT') {
        throw new VipgateError('EKERNEL_FILTER',
          'the nft command is not installed, so vipgate cannot keep the host kernel out of VIP traffic: ' +
          'apt-get install -y nftables (or run with --no-kernel-filter and drop the traffic yourself)');
      }
      throw new VipgateError('EKERNEL_FILTER',
        `could not install the nftables ingress rule on ${this.spec.iface}: ${(err.stderr ?? err.message).trim()} ` +
        '(vipgate needs CAP_NET_ADMIN and a kernel with nf_tables netdev support; or run with --no-kernel-filter)');
    }
    this.installed = true;
  }

  remove(): void {
    if (!this.installed) return;
    this.mustHoldLock('remove');
    this.installed = false;
    try { nft(['delete', 'table', 'netdev', tableName(this.spec.iface)]); } catch { /* gone with the interface */ }
  }

  describe(): string {
    return `nftables table netdev ${tableName(this.spec.iface)} drops, in this host's kernel only, IPv4 to ` +
      `${this.spec.owned.map(formatIpv4).join(', ')}` +
      (this.spec.backends.length ? ` and TCP and ICMP from the backends ${this.spec.backends.map(formatIpv4).join(', ')}` : '') +
      ' (removed at exit)';
  }
}
