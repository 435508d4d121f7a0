// The control plane's ARP work on a live NIC, off the packet path: gratuitous ARP for every
// owned address (at start, when an address is added, and on a refresh timer), and resolving
// backends that have no configured MAC (requests with retries; a refresh before the entry ages
// out). The packet path learns the answers (it learns from every ARP it sees); these tasks only
// read the neighbour table and send.

import { arp, BCAST } from '../wire/frames';
import { ARP_OP_REQUEST, ARP_OP_REPLY } from '../wire/arp';
import { formatIpv4, formatMac } from '../wire/addr';
import { Tables } from '../tables/services';
import { NeighbourTable } from '../dataplane/neighbours';
import { StateViews, NOW, T_NEIGH_TTL } from '../dataplane/state';
import { Ctr } from '../dataplane/counters';

export type Send = (frame: Buffer) => boolean;

/**
 * Gratuitous ARP for `ip`, in both forms hosts honour: a request (RFC 5227 "ARP Announcement":
 * sender = target = ip, target MAC zero) and a reply (sender = target = ip, to broadcast),
 * as MetalLB does, since some stacks update caches only from one of them.
 */
export function gratuitousArps(mac: Uint8Array, ip: number): Buffer[] {
  const m = formatMac(mac), a = formatIpv4(ip);
  return [
    arp({ src: m, dst: BCAST, oper: ARP_OP_REQUEST, senderIp: a, targetIp: a, pad: true }),
    arp({ src: m, dst: BCAST, oper: ARP_OP_REPLY, senderIp: a, targetIp: a, targetMac: BCAST, pad: true }),
  ];
}

export class Announcer {
  private timers: NodeJS.Timeout[] = [];
  constructor(private readonly send: Send, private readonly counters: Float64Array, private readonly owns: (ip: number) => boolean) {}

  /** One round of gratuitous ARP for those of `ips` owned now; returns the frames sent (each counted: garp_sent or tx_errors). */
  announceOnce(mac: Uint8Array, ips: readonly number[]): number {
    let sent = 0;
    for (const ip of ips) {
      if (!this.owns(ip)) continue;
      for (const f of gratuitousArps(mac, ip)) {
        if (this.send(f)) { this.counters[Ctr.garp_sent]!++; sent++; } else this.counters[Ctr.tx_errors]!++;
      }
    }
    return sent;
  }

  /** Announce `ips` now and `count - 1` more times, `intervalMs` apart, re-checking ownership before each send. */
  announce(mac: Uint8Array, ips: number[], count: number, intervalMs: number): void {
    const once = () => { this.announceOnce(mac, ips); };
    once();
    for (let i = 1; i < count; i++) this.timers.push(setTimeout(once, i * intervalMs).unref());
  }

  stop(): void { for (const t of this.timers) clearTimeout(t); this.timers = []; }
}

/**
 * Resolves backends without a configured MAC. Call tick(now) about once a second: a backend
 * with no fresh neighbour entry gets a broadcast request (a retry every tick until answered);
 * one whose entry is past half its TTL gets a unicast request to refresh it before it ages out.
 */
export class BackendResolver {
  constructor(private readonly send: Send, private readonly state: StateViews, private readonly neighbours: NeighbourTable,
              private readonly senderIp: () => number) {}

  tick(t: Tables, now: number): void {
    const ttl = this.state.times[T_NEIGH_TTL]!;
    // This process's packet clock (the neighbour table's): in one process control runs between
    // packets and the packet path's clock moves on with it; in a supervisor it is control's own.
    this.neighbours.clock[NOW] = now;
    const ourMac = formatMac(t.mac);
    for (let b = 0; b < t.backendSlots; b++) {
      if (t.bState[b] === 0 || t.bHasMac[b] === 1) continue;
      const ip = t.bIp[b]!;
      const n = this.neighbours.lookup(ip);
      let dst = BCAST;
      if (n >= 0) {
        if (now - this.state.nSeen[n]! < ttl / 2) continue;
        dst = formatMac(this.state.nMac, n * 8);   // refresh: ask the host itself
      }
      const f = arp({ src: ourMac, dst, senderIp: formatIpv4(this.senderIp()), targetIp: formatIpv4(ip), pad: true });
      if (this.send(f)) this.state.counters[Ctr.arp_requests_sent]!++; else this.state.counters[Ctr.tx_errors]!++;
    }
  }
}
