// ICMP on the packet path: echo requests to a VIP are answered in place (rate-limited), and ICMP
// errors about a flow are carried to the end of the flow that must hear them, so that Path MTU
// discovery (RFC 1191: "fragmentation needed" with the next-hop MTU) works through vipgate.
//
// Who sends what to whom (C = client, V = VIP, B = backend, R = a router on the way):
//
//   dsr  B --(src V)--> R --> C      R's error about it goes to V, i.e. to vipgate; it quotes the
//                                    V->C segment. The flow is (C, V, ports reversed): hand the
//                                    error to B unchanged but for the MACs (B holds V on lo).
//   nat  B --> vipgate --(src V)--> R --> C
//                                    the same error reaches vipgate at V; B knows the flow as B->C,
//                                    so the outer destination and the quoted source go V -> B.
//   nat  C --> vipgate --(dst B)--> B   B (or a router on its side) sends its error about the
//                                    C->B segment to C, through vipgate (B's gateway); C knows the
//                                    flow as C->V, so the outer source (when it is B) and the quoted
//                                    destination go B -> V.
//
// Checksums after a nat rewrite, all by RFC 1624 incremental updates: the outer IP header (address
// and TTL), the quoted IP header, the ICMP checksum (it covers the quote, no pseudo-header) and the
// quoted TCP checksum when the quote holds it. RFC 5508 (BCP 148, NAT behaviour for ICMP) asks a
// NAT to translate the embedded header and fix the ICMP checksum; the embedded TCP checksum often
// is not in a quote at all (8 bytes are enough for RFC 792) and no stack checks it, but when it is
// there we fix it too, so the quote is byte for byte the segment the receiver sent (as Linux's
// conntrack NAT does), which keeps captures on both sides readable.
//
// Everything returns ICMP_TX (transmit the frame as it now is) or a drop reason for the caller to
// count; nothing is written before the last check that can fail.

import { u16, s32, setU16, setU32, macCopy, macIsGroup } from '../wire/bytes';
import { ETH_DST, ETH_SRC } from '../wire/ethernet';
import { IP_SRC, IP_DST, IP_TTL, IP_PROTO, IP_CSUM, IP_MIN_HEADER_LEN, IPPROTO_TCP } from '../wire/ipv4';
import { TCP_CSUM } from '../wire/tcp';
import {
  ICMP_TYPE, ICMP_CSUM, ICMP_QUOTE, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_OK, ICMP_TRUNCATED,
  icmpCheck, icmpChecksumOk, icmpIsFlowError, icmpQuoteL4, icmpQuoteIsLaterFragment, icmpQuotePayloadLen,
} from '../wire/icmp';
import { csumReplace16, csumReplace32 } from '../wire/checksum';
import { Tables, MODE_NAT, ECHO_PER_MS, ECHO_BURST } from '../tables/services';
import { StateViews, NOW, T_ECHO_TOKENS, T_ECHO_LAST, F_VIP, F_BACKIP, F_BACKEND, B_CLIMAC } from './state';
import { FlowTable } from './flows';
import { NeighbourTable } from './neighbours';
import { Drop, Ctr } from './counters';
import { natRewriteIp, backendMacAt, setBackendMac } from './rewrite';

/** Returned instead of a drop reason: transmit the frame. */
export const ICMP_TX = -1;

/** TTL of an echo reply (Linux's default, net.ipv4.ip_default_ttl): a reply is a new datagram. */
const ECHO_REPLY_TTL = 64;

/**
 * Rewrite the address at `field` (IP_SRC or IP_DST) of an error's quoted IP header from `from` to
 * `to`, fixing the quoted IP checksum, the quoted TCP checksum when the quote holds it (it covers
 * the address through the pseudo-header) and the ICMP checksum over all of those words.
 */
function rewriteQuote(buf: Uint8Array, l4: number, len: number, field: number, from: number, to: number): void {
  const q = l4 + ICMP_QUOTE;
  let ic = u16(buf, l4 + ICMP_CSUM);
  const qc = u16(buf, q + IP_CSUM), qc2 = csumReplace32(qc, from, to);
  ic = csumReplace32(ic, from, to);
  ic = csumReplace16(ic, qc, qc2);
  setU32(buf, q + field, to);
  setU16(buf, q + IP_CSUM, qc2);
  if (icmpQuotePayloadLen(buf, l4, len) >= TCP_CSUM + 2) {
    const tp = icmpQuoteL4(buf, l4) + TCP_CSUM;
    const tc = u16(buf, tp), tc2 = csumReplace32(tc, from, to);
    ic = csumReplace16(ic, tc, tc2);
    setU16(buf, tp, tc2);
  }
  setU16(buf, l4 + ICMP_CSUM, ic);
}

export class IcmpPath {
  private readonly c: Float64Array;
  private readonly times: Float64Array;

  constructor(private readonly v: StateViews, private readonly flows: FlowTable, private readonly neighbours: NeighbourTable) {
    this.c = v.counters;
    this.times = v.times;
  }

  /**
   * ICMP to a VIP. The IPv4 header is checked (ihl, total within the frame, checksum) and it is
   * not a fragment: a fragment's ICMP checksum covers the whole reassembled message, and later
   * fragments carry no ICMP header, so the caller drops fragments (ip_fragment): vipgate does not
   * reassemble (a ping bigger than the MTU gets no answer). Returns ICMP_TX or a drop reason.
   */
  toVip(buf: Uint8Array, off: number, l3: number, ihl: number, total: number, vip: number, t: Tables): number {
    const l4 = l3 + ihl, len = total - ihl;
    const chk = icmpCheck(buf, l4, len);
    if (chk === ICMP_TRUNCATED) return Drop.truncated;
    if (!icmpChecksumOk(buf, l4, len)) return Drop.icmp_bad_checksum;
    const type = buf[l4 + ICMP_TYPE]!;
    if (type === ICMP_ECHO_REQUEST) return this.echo(buf, off, l3, ihl, l4, t);
    if (!icmpIsFlowError(type)) return Drop.icmp_unsupported;
    if (chk !== ICMP_OK) return Drop.icmp_bad_quote;
    return this.errorToBackend(buf, off, l3, l4, len, vip, t);
  }

  /** Answer an echo request in place: addresses and MACs swapped, type 0, VLAN tags kept. */
  private echo(buf: Uint8Array, off: number, l3: number, ihl: number, l4: number, t: Tables): number {
    if (t.echoOn === 0) return Drop.icmp_echo_off;
    // RFC 1122 §3.2.2.6 wants Record Route and Timestamp options updated and a source route
    // reversed in the reply; vipgate does not rewrite options, so it does not answer those.
    if (ihl !== IP_MIN_HEADER_LEN) return Drop.icmp_unsupported;
    // RFC 1122 §3.2.1.3: a source of 0/8, 127/8, multicast or class E (broadcast included) is
    // not a host that can be answered (§3.2.2.6: no echo reply to such a source).
    const a = buf[l3 + IP_SRC]!;
    if (a === 0 || a === 127 || a >= 224) return Drop.malformed;
    // Nor is a group (multicast) Ethernet source: the reply goes back to that MAC.
    if (macIsGroup(buf, off + ETH_SRC)) return Drop.malformed;

    // Token bucket on the packet clock: refill by the time elapsed since the latest time seen (a
    // clock that went back, as a capture's may, refills nothing until it passes that time again),
    // at most echoBurst tokens (also right after a reload made the burst smaller), one per reply.
    const tm = this.times, now = this.flows.clock[NOW]!, eb = t.echoBucket;
    let tokens = tm[T_ECHO_TOKENS]!;
    const last = tm[T_ECHO_LAST]!;
    if (now > last) {
      tokens += (now - last) * eb[ECHO_PER_MS]!;
      tm[T_ECHO_LAST] = now;
    }
    const burst = eb[ECHO_BURST]!;
    if (tokens > burst) tokens = burst;
    if (tokens < 1) { tm[T_ECHO_TOKENS] = tokens; return Drop.icmp_rate_limited; }
    tm[T_ECHO_TOKENS] = tokens - 1;

    // Swapping source and destination leaves the IP checksum as it is (a sum does not depend on
    // the order of its words); the TTL and the ICMP type are updated incrementally (RFC 1624).
    const src = s32(buf, l3 + IP_SRC), dst = s32(buf, l3 + IP_DST);
    setU32(buf, l3 + IP_SRC, dst);
    setU32(buf, l3 + IP_DST, src);
    const proto = buf[l3 + IP_PROTO]!;
    setU16(buf, l3 + IP_CSUM, csumReplace16(u16(buf, l3 + IP_CSUM), (buf[l3 + IP_TTL]! << 8) | proto, (ECHO_REPLY_TTL << 8) | proto));
    buf[l3 + IP_TTL] = ECHO_REPLY_TTL;
    const code = buf[l4 + 1]!;
    setU16(buf, l4 + ICMP_CSUM, csumReplace16(u16(buf, l4 + ICMP_CSUM), (ICMP_ECHO_REQUEST << 8) | code, (ICMP_ECHO_REPLY << 8) | code));
    buf[l4 + ICMP_TYPE] = ICMP_ECHO_REPLY;
    macCopy(buf, off + ETH_DST, buf, off + ETH_SRC);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    this.c[Ctr.icmp_echo_replies]!++;
    return ICMP_TX;
  }

  /**
   * An ICMP error to a VIP whose quote (checked) should be a segment the backend sent from the
   * VIP to a client: hand it to the flow's backend. The flow's state and idle time are left alone
   * (an error is not traffic of the connection).
   */
  private errorToBackend(buf: Uint8Array, off: number, l3: number, l4: number, len: number, vip: number, t: Tables): number {
    const q = l4 + ICMP_QUOTE;
    if (buf[q + IP_PROTO] !== IPPROTO_TCP || icmpQuoteIsLaterFragment(buf, l4)) return Drop.icmp_unknown_flow;
    if (s32(buf, q + IP_SRC) !== vip) return Drop.icmp_unknown_flow;
    const ql4 = icmpQuoteL4(buf, l4);
    // The quoted segment went V -> C: its destination port is the client's.
    const f = this.flows.lookup(s32(buf, q + IP_DST), vip, (u16(buf, ql4 + 2) << 16) | u16(buf, ql4));
    if (f < 0) return Drop.icmp_unknown_flow;
    const fw = this.v.fw, w = f << 4;
    const b = fw[w + F_BACKEND]!, backIp = fw[w + F_BACKIP]!;
    const m = backendMacAt(t, this.neighbours, b, backIp);
    if (m >= 0) return m;
    if (t.mode === MODE_NAT) {
      const ttl = buf[l3 + IP_TTL]!;
      if (ttl <= 1) return Drop.ttl_exceeded;
      natRewriteIp(buf, l3, IP_DST, vip, backIp, ttl);
      rewriteQuote(buf, l4, len, IP_SRC, vip, backIp);
    }
    setBackendMac(buf, off + ETH_DST, t, this.v.nMac, b, m);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    this.c[Ctr.icmp_errors_to_backend]!++;
    return ICMP_TX;
  }

  /**
   * nat: ICMP from the backends' side to an address that is not a VIP (the IPv4 header checked,
   * not a fragment: the caller leaves fragments as not_for_us). An error about a C->B segment of
   * one of our flows goes back to C as if about C->V; anything else is not ours to route
   * (Drop.not_for_us, as before vipgate knew ICMP).
   */
  fromBackend(buf: Uint8Array, off: number, l3: number, ihl: number, total: number, t: Tables): number {
    const l4 = l3 + ihl, len = total - ihl;
    if (icmpCheck(buf, l4, len) !== ICMP_OK || !icmpIsFlowError(buf[l4 + ICMP_TYPE]!)) return Drop.not_for_us;
    const q = l4 + ICMP_QUOTE;
    if (buf[q + IP_PROTO] !== IPPROTO_TCP || icmpQuoteIsLaterFragment(buf, l4)) return Drop.not_for_us;
    const cli = s32(buf, q + IP_SRC), backIp = s32(buf, q + IP_DST);
    // Errors go to the quoted datagram's source: anything else is not about this flow.
    if (s32(buf, l3 + IP_DST) !== cli) return Drop.not_for_us;
    const ql4 = icmpQuoteL4(buf, l4);
    // The quoted segment went C -> B: source port the client's, destination port the VIP's.
    const f = this.flows.reverseLookup(backIp, cli, (u16(buf, ql4) << 16) | u16(buf, ql4 + 2));
    if (f < 0) return Drop.not_for_us;
    // About one of our flows: from here on the drops are ICMP's own.
    if (!icmpChecksumOk(buf, l4, len)) return Drop.icmp_bad_checksum;
    const ttl = buf[l3 + IP_TTL]!;
    if (ttl <= 1) return Drop.ttl_exceeded;
    const fw = this.v.fw, w = f << 4, vip = fw[w + F_VIP]!;
    // From B itself the source becomes V (C only knows V); a router on B's side keeps its own
    // address, as in any routed ICMP error (only its TTL goes down).
    const outerSrc = s32(buf, l3 + IP_SRC);
    natRewriteIp(buf, l3, IP_SRC, outerSrc, outerSrc === backIp ? vip : outerSrc, ttl);
    rewriteQuote(buf, l4, len, IP_DST, backIp, vip);
    macCopy(buf, off + ETH_DST, this.v.fb, (f << 6) + B_CLIMAC);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    this.c[Ctr.icmp_errors_to_client]!++;
    return ICMP_TX;
  }
}
