// Address rewrites shared by the TCP and ICMP parts of the packet path.

import { u16, setU16, setU32, macCopy } from '../wire/bytes';
import { IP_TTL, IP_PROTO, IP_CSUM } from '../wire/ipv4';
import { csumReplace16, csumReplace32 } from '../wire/checksum';
import { Tables, BackendState } from '../tables/services';
import { NeighbourTable } from './neighbours';
import { Drop } from './counters';

/** backendMacAt: the backend's MAC is the tables' own (t.bMac at b * 8). */
export const BMAC_STATIC = -1;

/**
 * Where the MAC of a flow's backend b (address backIp) is: BMAC_STATIC, or neighbour slot n
 * encoded as -2 - n (nMac at n * 8); or, when no frame can go to it, the drop reason (>= 0):
 * no_backend (removed from the tables, not merely drained or down) or backend_unresolved.
 * Nothing is written: callers check everything else before setBackendMac.
 */
export function backendMacAt(t: Tables, nb: NeighbourTable, b: number, backIp: number): number {
  if (b >= t.backendSlots || t.bState[b] === BackendState.absent) return Drop.no_backend;
  if (t.bHasMac[b] !== 0) return BMAC_STATIC;
  const n = nb.lookup(backIp);
  return n < 0 ? Drop.backend_unresolved : -2 - n;
}

/** Write backend b's MAC found by backendMacAt (m < 0) at buf[at, at+6). */
export function setBackendMac(buf: Uint8Array, at: number, t: Tables, nMac: Uint8Array, b: number, m: number): void {
  if (m === BMAC_STATIC) macCopy(buf, at, t.bMac, b * 8);
  else macCopy(buf, at, nMac, (-2 - m) * 8);
}

/**
 * nat rewrite of one IPv4 header address field (IP_DST toward the backend, IP_SRC back to the
 * client) from `from` to `to`, with the TTL decremented (nat routes), the header checksum fixed
 * by RFC 1624 incremental updates (it covers the TTL and the address). Returns nothing to check:
 * the caller checked ttl > 1 and the header. `from === to` only decrements the TTL. An L4
 * checksum over a pseudo-header (TCP) is the caller's to fix.
 */
export function natRewriteIp(buf: Uint8Array, l3: number, field: number, from: number, to: number, ttl: number): void {
  const proto = buf[l3 + IP_PROTO]!;
  let ipc = u16(buf, l3 + IP_CSUM);
  ipc = csumReplace16(ipc, (ttl << 8) | proto, ((ttl - 1) << 8) | proto);
  ipc = csumReplace32(ipc, from, to);
  buf[l3 + IP_TTL] = ttl - 1;
  setU32(buf, l3 + field, to);
  setU16(buf, l3 + IP_CSUM, ipc);
}
