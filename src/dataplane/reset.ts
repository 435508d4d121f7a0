// The RST vipgate sends to a client in the name of the service (source: the VIP and port the
// client dialled), built in place over the client's own segment. Used for a flow whose backend
// is DOWN (on_backend_down: reset) and for a held SYN whose backend did not answer its probe
// (syn_check on_fail: reset). It never allocates: it reads every field it needs first, then
// writes a fresh 20-byte IPv4 header and a 20-byte TCP header over the old ones.
//
// The sequence numbers follow RFC 9293 §3.10.7.1 (a segment to a closed port): if the segment
// carries an ACK, the RST takes SEG.ACK as its sequence number and carries no ACK; otherwise
// (a SYN) it has sequence 0 and acknowledges SEG.SEQ + SEG.LEN (SYN and FIN count one each).
// For a client in ESTABLISHED, SEG.ACK is exactly its RCV.NXT, which is what RFC 5961 §3.2 asks
// of an RST before it is accepted (anything else only earns a challenge ACK).

import { u16, u32, s32, setU16, setU32, macCopy } from '../wire/bytes';
import { ETH_DST, ETH_SRC } from '../wire/ethernet';
import { IP_TOS, IP_TOTAL_LEN, IP_ID, IP_FLAGS_FRAG, IP_FLAG_DF, IP_TTL, IP_PROTO, IP_CSUM, IP_SRC, IP_DST, IP_MIN_HEADER_LEN, IPPROTO_TCP } from '../wire/ipv4';
import { TCP_SPORT, TCP_DPORT, TCP_SEQ, TCP_ACK, TCP_DOFF, TCP_FLAGS, TCP_WINDOW, TCP_CSUM, TCP_URG, TCP_MIN_HEADER_LEN,
  TCP_SYN, TCP_FIN, TCP_RST, TCP_ACKF } from '../wire/tcp';
import { sum16, finish, pseudoHeaderSum } from '../wire/checksum';

/** TTL of the RSTs vipgate originates (Linux's default for its own segments). */
const RST_TTL = 64;
const RST_L3_LEN = IP_MIN_HEADER_LEN + TCP_MIN_HEADER_LEN;

/**
 * Turn the client's TCP segment in buf (Ethernet at `off`, IPv4 at `l3`, TCP at `l4`; headers
 * already checked by the caller) into the RST the service sends back to that client, from
 * `mac` (vipgate's) to the MAC the segment came from, on the same VLAN tags. Returns the new
 * frame length (from `off`): shorter than the segment, the payload and options are gone.
 */
export function resetInPlace(buf: Uint8Array, off: number, l3: number, l4: number, mac: Uint8Array): number {
  // Read everything first: the new headers overwrite the old ones.
  const cli = s32(buf, l3 + IP_SRC), vip = s32(buf, l3 + IP_DST);
  const ihl = (buf[l3]! & 0x0f) << 2, total = u16(buf, l3 + IP_TOTAL_LEN);
  const doff = (buf[l4 + TCP_DOFF]! >>> 4) << 2;
  const sport = u16(buf, l4 + TCP_SPORT), dport = u16(buf, l4 + TCP_DPORT);
  const seq = u32(buf, l4 + TCP_SEQ), ack = u32(buf, l4 + TCP_ACK);
  const flags = buf[l4 + TCP_FLAGS]!;
  const segLen = total - ihl - doff + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);

  macCopy(buf, off + ETH_DST, buf, off + ETH_SRC);
  macCopy(buf, off + ETH_SRC, mac, 0);

  buf[l3] = 0x45;
  buf[l3 + IP_TOS] = 0;
  setU16(buf, l3 + IP_TOTAL_LEN, RST_L3_LEN);
  setU16(buf, l3 + IP_ID, 0);
  setU16(buf, l3 + IP_FLAGS_FRAG, IP_FLAG_DF);
  buf[l3 + IP_TTL] = RST_TTL;
  buf[l3 + IP_PROTO] = IPPROTO_TCP;
  setU32(buf, l3 + IP_SRC, vip);
  setU32(buf, l3 + IP_DST, cli);
  setU16(buf, l3 + IP_CSUM, 0);
  setU16(buf, l3 + IP_CSUM, finish(sum16(buf, l3, IP_MIN_HEADER_LEN)));

  const t = l3 + IP_MIN_HEADER_LEN;
  setU16(buf, t + TCP_SPORT, dport);
  setU16(buf, t + TCP_DPORT, sport);
  if (flags & TCP_ACKF) {
    setU32(buf, t + TCP_SEQ, ack);
    setU32(buf, t + TCP_ACK, 0);
    buf[t + TCP_FLAGS] = TCP_RST;
  } else {
    setU32(buf, t + TCP_SEQ, 0);
    setU32(buf, t + TCP_ACK, (seq + segLen) >>> 0);
    buf[t + TCP_FLAGS] = TCP_RST | TCP_ACKF;
  }
  buf[t + TCP_DOFF] = (TCP_MIN_HEADER_LEN >>> 2) << 4;
  setU16(buf, t + TCP_WINDOW, 0);
  setU16(buf, t + TCP_CSUM, 0);
  setU16(buf, t + TCP_URG, 0);
  setU16(buf, t + TCP_CSUM, finish(sum16(buf, t, TCP_MIN_HEADER_LEN, pseudoHeaderSum(vip, cli, IPPROTO_TCP, TCP_MIN_HEADER_LEN))));
  return t + TCP_MIN_HEADER_LEN - off;
}
