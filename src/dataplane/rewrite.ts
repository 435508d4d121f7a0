// Address rewrites shared by the TCP and ICMP parts of the packet path.

import { u16, setU16, setU32 } from '../wire/bytes';
import { IP_TTL, IP_PROTO, IP_CSUM } from '../wire/ipv4';
import { csumReplace16, csumReplace32 } from '../wire/checksum';

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
