// The neighbour (ARP) table: IPv4 -> MAC learned from ARP traffic, bounded, with ageing.
// Open addressing over StateViews; an entry older than the TTL is treated as absent and its
// slot is reused by the next host that needs one. Probing is bounded by MAX_PROBE; a host that
// finds no slot is not learned (counted as neigh_table_full) — learning never evicts fresh entries.

import { StateViews, PacketClock, NOW, T_NEIGH_TTL } from './state';
import { hash1 } from '../tables/hash';
import { Ctr } from './counters';
import { macCopy, macEq } from '../wire/bytes';

const MAX_PROBE = 32;
const NEIGH_SALT = 0x2545f491;

export class NeighbourTable {
  private readonly mask: number;
  private readonly seed: number;

  /** The clock is this process's (state.ts PacketClock): entries age against clock[NOW]. */
  constructor(private readonly v: StateViews, readonly clock: PacketClock) {
    this.mask = v.neighbourSlots - 1;
    this.seed = (v.seed ^ NEIGH_SALT) | 0;
  }

  /** Slot of a fresh entry for ip (its MAC is at nMac[slot*8]), or -1. Time: clock[NOW]. */
  lookup(ip: number): number {
    const v = this.v, mask = this.mask, ttl = v.times[T_NEIGH_TTL]!, now = this.clock[NOW]!;
    let s = hash1(ip, this.seed) & mask;
    for (let i = 0; i < MAX_PROBE; i++) {
      if (v.nState[s] === 0) return -1;
      if (v.nIp[s] === ip) return now - v.nSeen[s]! > ttl ? -1 : s;
      s = (s + 1) & mask;
    }
    return -1;
  }

  /**
   * Record that ip is at the MAC in buf[mo, mo+6). An entry is fresh only by its time (nSeen), so
   * that time is written last and, before the MAC changes, first made stale: a worker killed in
   * here (the table is in shared memory: issue 9) leaves a stale entry, never a fresh one with a
   * half-copied MAC or another host's.
   */
  learn(ip: number, buf: Uint8Array, mo: number): void {
    const v = this.v, mask = this.mask, ttl = v.times[T_NEIGH_TTL]!, now = this.clock[NOW]!;
    let s = hash1(ip, this.seed) & mask;
    let reuse = -1;
    for (let i = 0; i < MAX_PROBE; i++) {
      if (v.nState[s] === 0) { if (reuse < 0) reuse = s; break; }
      if (v.nIp[s] === ip) {
        if (!macEq(v.nMac, s * 8, buf, mo)) { v.nSeen[s] = -Infinity; macCopy(v.nMac, s * 8, buf, mo); v.counters[Ctr.neigh_updated]!++; }
        v.nSeen[s] = now;
        return;
      }
      if (reuse < 0 && now - v.nSeen[s]! > ttl) reuse = s;
      s = (s + 1) & mask;
    }
    if (reuse < 0) { v.counters[Ctr.neigh_table_full]!++; return; }
    v.nSeen[reuse] = -Infinity;
    v.nState[reuse] = 1;
    v.nIp[reuse] = ip;
    macCopy(v.nMac, reuse * 8, buf, mo);
    v.nSeen[reuse] = now;
    v.counters[Ctr.neigh_learned]!++;
  }
}
