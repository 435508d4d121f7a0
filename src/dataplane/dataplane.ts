// The packet path: one synchronous function over the bytes of one Ethernet frame that returns a
// verdict. It never allocates, never awaits and never throws on bad input; every frame is counted
// in frames_in and then exactly once more, in frames_out or under one drop reason.
//
//   ARP request for a VIP ........................ reply built in place (TX)
//   TCP SYN to a VIP with a service ............... pick backend, create flow, rewrite (TX)
//   TCP segment of a known flow ................... rewrite (TX): dsr = MAC, nat = IP + MAC
//   TCP reply from a backend of a nat flow ........ reverse rewrite to the VIP (TX)
//   ICMP echo to a VIP, ICMP error about a flow ... answered / carried to the flow's other end (icmp.ts)
//   anything else ................................. DROP, counted by reason
//
// TX means: transmit buf[off, off+len) as it now is (same length). All checks that can fail come
// before the first write, so a dropped frame is left as it was.

import { u16, s32, setU16, macEq, macCopy, macIsBroadcast, macIsGroup, macIsZero } from '../wire/bytes';
import { ETH_DST, ETH_SRC, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, VLAN_TAG_LEN, isVlanTpid, MAX_VLAN_TAGS } from '../wire/ethernet';
import { ARP_LEN, ARP_SHA, ARP_SPA, ARP_TPA, ARP_OP_REQUEST, ARP_OP_REPLY, arpIsEthIpv4, arpOper, arpMakeReplyInPlace } from '../wire/arp';
import { IP_MIN_HEADER_LEN, IP_TOTAL_LEN, IP_FLAGS_FRAG, IP_FLAG_MF, IP_FRAG_OFFSET_MASK, IP_TTL, IP_PROTO, IP_SRC, IP_DST, IPPROTO_TCP, IPPROTO_ICMP } from '../wire/ipv4';
import { TCP_MIN_HEADER_LEN, TCP_DOFF, TCP_FLAGS, TCP_CSUM, TCP_SYN, TCP_ACKF, TCP_RST, TCP_FIN } from '../wire/tcp';
import { sum16, fold, csumReplace32 } from '../wire/checksum';
import { Tables, MODE_NAT, BackendState } from '../tables/services';
import { StateViews, T_NOW, B_STATE, F_VIP, F_BACKIP, F_BACKEND, D_LAST, D_PKTS_IN, D_PKTS_OUT, B_CLIMAC } from './state';
import { FlowTable, FS_SYN, FS_ESTABLISHED, FS_CLOSING } from './flows';
import { NeighbourTable } from './neighbours';
import { Drop, Ctr } from './counters';
import { hash2 } from '../tables/hash';
import { IcmpPath, ICMP_TX } from './icmp';
import { natRewriteIp } from './rewrite';

/** Seed of the hash that spreads new flows over a service's active group (fixed: reproducible). */
const PICK_SEED = 0x51c4;

/**
 * nat rewrite of one IPv4 address field (IP_DST toward the backend, IP_SRC back to the client)
 * from `from` to `to`, with the TTL decremented (nat routes), by RFC 1624 incremental updates:
 * the IP header checksum covers the TTL and the address; the TCP checksum covers the address
 * through the pseudo-header (RFC 9293 §3.1). The caller checked ttl > 1 and the headers.
 */
function natRewrite(buf: Uint8Array, l3: number, l4: number, field: number, from: number, to: number, ttl: number): void {
  natRewriteIp(buf, l3, field, from, to, ttl);
  setU16(buf, l4 + TCP_CSUM, csumReplace32(u16(buf, l4 + TCP_CSUM), from, to));
}

export const VERDICT_DROP = 0;
export const VERDICT_TX = 1;

const SYN_ACK_RST_FIN = TCP_SYN | TCP_ACKF | TCP_RST | TCP_FIN;

export class Dataplane {
  /** The tables control published; replaced whole by publish(), read once per frame. */
  private tables: Tables;
  readonly flows: FlowTable;
  readonly neighbours: NeighbourTable;
  private readonly icmp: IcmpPath;
  readonly state: StateViews;
  private readonly c: Float64Array;
  private readonly times: Float64Array;
  /** Drop reason of the last dropped frame (for tests and tracing), -1 after a TX. */
  lastDrop = -1;

  constructor(state: StateViews, tables: Tables) {
    this.state = state;
    this.tables = tables;
    this.c = state.counters;
    this.times = state.times;
    this.flows = new FlowTable(state);
    this.neighbours = new NeighbourTable(state);
    this.icmp = new IcmpPath(state, this.flows, this.neighbours);
  }

  /** Swap in new tables; takes effect from the next frame. Existing flows keep their backend slots. */
  publish(t: Tables): void { this.tables = t; }
  get currentTables(): Tables { return this.tables; }

  private drop(reason: number): number {
    this.c[reason]!++;
    this.lastDrop = reason;
    return VERDICT_DROP;
  }

  private tx(len: number): number {
    this.c[Ctr.frames_out]!++;
    this.c[Ctr.bytes_out]! += len;
    this.lastDrop = -1;
    return VERDICT_TX;
  }

  /** Process one frame occupying buf[off, off+len) at time `now` (ms). Returns VERDICT_TX or VERDICT_DROP. */
  process(buf: Uint8Array, off: number, len: number, now: number): number {
    this.times[T_NOW] = now;
    return this.step(buf, off, len);
  }

  /** Set the packet path's clock (ms) for step() and the table methods. */
  setClock(now: number): void { this.times[T_NOW] = now; }

  /**
   * process() with the time already set (setClock, or a store into state.times[T_NOW]): for a
   * link that updates the clock without passing a double per call.
   */
  step(buf: Uint8Array, off: number, len: number): number {
    const c = this.c;
    c[Ctr.frames_in]!++;
    c[Ctr.bytes_in]! += len;
    const end = off + len;
    if (len < ETH_HEADER_LEN || end > buf.length || off < 0) return this.drop(Drop.truncated);
    const t = this.tables;
    const mac = t.mac;
    if (macEq(buf, off + ETH_SRC, mac, 0)) return this.drop(Drop.own_frame);

    let p = off + 12;
    let type = u16(buf, p);
    for (let tags = 0; isVlanTpid(type); tags++) {
      if (tags === MAX_VLAN_TAGS) return this.drop(Drop.too_many_vlan_tags);
      if (p + VLAN_TAG_LEN + 2 > end) return this.drop(Drop.truncated);
      p += VLAN_TAG_LEN;
      type = u16(buf, p);
    }
    const l3 = p + 2;
    if (type === ETHERTYPE_ARP) return this.arp(buf, off, l3, end, t);
    if (type !== ETHERTYPE_IPV4) return this.drop(Drop.unsupported_ethertype);
    if (!macEq(buf, off + ETH_DST, mac, 0)) return this.drop(Drop.not_for_us);

    // IPv4: check the header once; accessors below trust it.
    if (end - l3 < IP_MIN_HEADER_LEN) return this.drop(Drop.truncated);
    const vihl = buf[l3]!;
    const ihl = (vihl & 0x0f) << 2;
    if (vihl >>> 4 !== 4 || ihl < IP_MIN_HEADER_LEN) return this.drop(Drop.malformed);
    const total = u16(buf, l3 + IP_TOTAL_LEN);
    if (total < ihl) return this.drop(Drop.malformed);
    if (l3 + total > end) return this.drop(Drop.truncated);
    if (fold(sum16(buf, l3, ihl)) !== 0xffff) return this.drop(Drop.bad_ip_checksum);

    const dst = s32(buf, l3 + IP_DST);
    const proto = buf[l3 + IP_PROTO]!;
    const frag = (u16(buf, l3 + IP_FLAGS_FRAG) & (IP_FLAG_MF | IP_FRAG_OFFSET_MASK)) !== 0;
    if (t.vipIndex(dst) >= 0) {
      if (proto === IPPROTO_ICMP) return this.icmpVerdict(this.icmp.toVip(buf, off, l3, ihl, total, dst, t), len);
      if (proto !== IPPROTO_TCP) return this.drop(Drop.not_tcp);
      if (frag) return this.drop(Drop.ip_fragment);
      const l4 = l3 + ihl;
      if (total - ihl < TCP_MIN_HEADER_LEN) return this.drop(Drop.truncated);
      const doff = (buf[l4 + TCP_DOFF]! >>> 4) << 2;
      if (doff < TCP_MIN_HEADER_LEN || doff > total - ihl) return this.drop(Drop.malformed);
      return this.toVip(buf, off, len, l3, l4, dst, t);
    }
    if (t.mode === MODE_NAT && proto === IPPROTO_TCP && !frag) {
      const l4 = l3 + ihl;
      if (total - ihl >= TCP_MIN_HEADER_LEN) {
        const doff = (buf[l4 + TCP_DOFF]! >>> 4) << 2;
        if (doff >= TCP_MIN_HEADER_LEN && doff <= total - ihl) {
          const f = this.flows.reverseLookup(s32(buf, l3 + IP_SRC), dst, (u16(buf, l4 + 2) << 16) | u16(buf, l4));
          if (f >= 0) return this.fromBackend(buf, off, len, l3, l4, f, t);
        }
      }
    }
    if (t.mode === MODE_NAT && proto === IPPROTO_ICMP) return this.icmpVerdict(this.icmp.fromBackend(buf, off, l3, ihl, total, t), len);
    return this.drop(Drop.not_for_us);
  }

  /** Count what the ICMP path (dataplane/icmp.ts) decided: ICMP_TX or a drop reason. */
  private icmpVerdict(r: number, len: number): number {
    return r === ICMP_TX ? this.tx(len) : this.drop(r);
  }

  private arp(buf: Uint8Array, off: number, l3: number, end: number, t: Tables): number {
    if (end - l3 < ARP_LEN) return this.drop(Drop.truncated);
    if (!arpIsEthIpv4(buf, l3)) return this.drop(Drop.arp_unsupported);
    const sha = l3 + ARP_SHA;
    if (macIsGroup(buf, sha) || macIsZero(buf, sha)) return this.drop(Drop.malformed);
    const op = arpOper(buf, l3);
    if (op === ARP_OP_REQUEST) this.c[Ctr.arp_requests_seen]!++;
    const spa = s32(buf, l3 + ARP_SPA);
    // Someone else claims one of our VIPs (a request, a reply, or a gratuitous announcement):
    // an address conflict. Never learn it and never answer it. Our own frames were dropped above.
    if (spa !== 0 && t.vipIndex(spa) >= 0 && !macEq(buf, sha, t.mac, 0)) return this.drop(Drop.arp_conflict);
    if (spa !== 0) this.neighbours.learn(spa, buf, sha);
    if (op === ARP_OP_REPLY) return this.drop(Drop.arp_reply);
    if (op !== ARP_OP_REQUEST) return this.drop(Drop.arp_unsupported);
    const tpa = s32(buf, l3 + ARP_TPA);
    if (t.vipIndex(tpa) < 0) return this.drop(Drop.arp_not_for_vip);
    // A request is for us when broadcast or unicast to our MAC (a cache refresh, RFC 1122 2.3.2.1).
    if (!macIsBroadcast(buf, off + ETH_DST) && !macEq(buf, off + ETH_DST, t.mac, 0)) return this.drop(Drop.not_for_us);
    // Reply in place, to the requester, on the same VLAN (the tags stay as they are). An RFC 5227
    // probe (sender IP 0.0.0.0) is answered too: that is how an owner defends its address.
    macCopy(buf, off + ETH_DST, buf, sha);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    arpMakeReplyInPlace(buf, l3, t.mac, tpa);
    this.c[Ctr.arp_replies]!++;
    return this.tx(end - off);
  }

  /** A TCP segment to a VIP. The IP and TCP headers are checked. */
  private toVip(buf: Uint8Array, off: number, len: number, l3: number, l4: number, vip: number, t: Tables): number {
    const c = this.c, v = this.state, flows = this.flows;
    const cli = s32(buf, l3 + IP_SRC);
    const dport = u16(buf, l4 + 2);
    const ports = (u16(buf, l4) << 16) | dport; // signed 32-bit, see s32
    const flags = buf[l4 + TCP_FLAGS]!;
    const control = flags & SYN_ACK_RST_FIN;
    let f = flows.lookup(cli, vip, ports);
    let next = -1; // the flow's next state, written only once the frame is sure to be sent

    if (flags & TCP_SYN) {
      if (control !== TCP_SYN) return this.drop(Drop.bad_tcp_flags);
      if (f >= 0 && v.fb[(f << 6) + B_STATE] !== FS_CLOSING) {
        c[Ctr.syn_retransmits]!++;
      } else {
        // A new connection (or a new one reusing a closing flow's 5-tuple: re-steer it).
        const svc = t.serviceIndex(vip, dport);
        if (svc < 0) return this.drop(Drop.no_service);
        const b = t.pickBackend(svc, hash2(cli, ports, PICK_SEED) >>> 8);
        if (b < 0) return this.drop(Drop.no_backend);
        const backIp = t.bIp[b]!;
        if (t.bHasMac[b] === 0 && this.neighbours.lookup(backIp) < 0) return this.drop(Drop.backend_unresolved);
        const nat = t.mode === MODE_NAT;
        if (nat && buf[l3 + IP_TTL]! <= 1) return this.drop(Drop.ttl_exceeded);
        let rslot = -1;
        if (nat) {
          const rf = flows.reverseLookup(backIp, cli, ports);
          if (rf >= 0 && rf !== f) return this.drop(Drop.nat_conflict);
          rslot = flows.reverseFreeSlot(backIp, cli, ports);
          if (rslot < 0) return this.drop(Drop.flow_table_full);
        }
        if (f >= 0) { flows.remove(f); c[Ctr.flows_reused]!++; }
        f = flows.insert(cli, vip, ports, b, backIp);
        if (f < 0) return this.drop(Drop.flow_table_full);
        if (nat) flows.setReverse(rslot, f);
        macCopy(v.fb, (f << 6) + B_CLIMAC, buf, off + ETH_SRC);
      }
    } else {
      if (f < 0) return this.drop(Drop.unknown_flow);
      const st = v.fb[(f << 6) + B_STATE]!;
      if (control & (TCP_RST | TCP_FIN)) next = FS_CLOSING;
      else if (st === FS_SYN && (control & TCP_ACKF)) next = FS_ESTABLISHED;
    }
    return this.toBackend(buf, off, len, l3, l4, f, next, t);
  }

  /** Rewrite a client's segment of flow f for its backend and transmit it. */
  private toBackend(buf: Uint8Array, off: number, len: number, l3: number, l4: number, f: number, next: number, t: Tables): number {
    const v = this.state, w = f << 4, d = f << 3;
    const b = v.fw[w + F_BACKEND]!;
    // A backend removed from the tables (not merely drained or down) cannot take more packets.
    if (b >= t.backendSlots || t.bState[b] === BackendState.absent) return this.drop(Drop.no_backend);
    let macBuf: Uint8Array = t.bMac, macOff = b * 8;
    if (t.bHasMac[b] === 0) {
      const n = this.neighbours.lookup(v.fw[w + F_BACKIP]!);
      if (n < 0) return this.drop(Drop.backend_unresolved);
      macBuf = v.nMac; macOff = n * 8;
    }
    if (t.mode === MODE_NAT) {
      const ttl = buf[l3 + IP_TTL]!;
      if (ttl <= 1) return this.drop(Drop.ttl_exceeded);
      natRewrite(buf, l3, l4, IP_DST, v.fw[w + F_VIP]!, v.fw[w + F_BACKIP]!, ttl);
    }
    macCopy(buf, off + ETH_DST, macBuf, macOff);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    if (next >= 0) v.fb[(f << 6) + B_STATE] = next;
    v.fd[d + D_LAST] = this.times[T_NOW]!;
    v.fd[d + D_PKTS_IN]!++;
    this.c[Ctr.forwarded]!++;
    this.c[Ctr.forwarded_to_backend]!++;
    return this.tx(len);
  }

  /** nat: a backend's segment of flow f back to its client, from the VIP. */
  private fromBackend(buf: Uint8Array, off: number, len: number, l3: number, l4: number, f: number, t: Tables): number {
    const v = this.state, w = f << 4, d = f << 3;
    const ttl = buf[l3 + IP_TTL]!;
    if (ttl <= 1) return this.drop(Drop.ttl_exceeded);
    const flags = buf[l4 + TCP_FLAGS]!;
    const sb = (f << 6) + B_STATE;
    if (flags & (TCP_RST | TCP_FIN)) v.fb[sb] = FS_CLOSING;
    else if (v.fb[sb] === FS_SYN && (flags & (TCP_SYN | TCP_ACKF)) === (TCP_SYN | TCP_ACKF)) v.fb[sb] = FS_ESTABLISHED;
    natRewrite(buf, l3, l4, IP_SRC, v.fw[w + F_BACKIP]!, v.fw[w + F_VIP]!, ttl);
    macCopy(buf, off + ETH_DST, v.fb, (f << 6) + B_CLIMAC);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    v.fd[d + D_LAST] = this.times[T_NOW]!;
    v.fd[d + D_PKTS_OUT]!++;
    this.c[Ctr.forwarded]!++;
    this.c[Ctr.forwarded_to_client]!++;
    return this.tx(len);
  }

  /**
   * Touch the flow-table memory frame buf[off, off+len) will need, reading only (a software
   * prefetch): a batch calls this for every frame before processing any, so the batch's cache
   * misses on a large flow table overlap instead of each frame waiting on its own (issue 10).
   * Untagged IPv4 TCP only (anything else is left to step()); nothing is checked beyond what the
   * reads need to stay inside the frame. Returns a meaningless value (so the loads stay).
   */
  touch(buf: Uint8Array, off: number, len: number): number {
    if (len < ETH_HEADER_LEN + IP_MIN_HEADER_LEN + TCP_MIN_HEADER_LEN || u16(buf, off + 12) !== ETHERTYPE_IPV4) return 0;
    const l3 = off + ETH_HEADER_LEN;
    const ihl = (buf[l3]! & 0x0f) << 2;
    if (buf[l3 + IP_PROTO] !== IPPROTO_TCP || ihl < IP_MIN_HEADER_LEN || ETH_HEADER_LEN + ihl + TCP_MIN_HEADER_LEN > len) return 0;
    const l4 = l3 + ihl, t = this.tables;
    const src = s32(buf, l3 + IP_SRC), dst = s32(buf, l3 + IP_DST);
    if (t.vipIndex(dst) >= 0) return this.flows.touch(src, dst, (u16(buf, l4) << 16) | u16(buf, l4 + 2));
    if (t.mode === MODE_NAT) return this.flows.touchReverse(src, dst, (u16(buf, l4 + 2) << 16) | u16(buf, l4));
    return 0;
  }

  /** Expire idle flows, a slice at a time; call from a timer (live) or every so often (replay). */
  sweep(now: number, budget: number): number { this.times[T_NOW] = now; return this.flows.sweep(budget); }
}
