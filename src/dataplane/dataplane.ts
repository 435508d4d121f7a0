// The packet path: one synchronous function over the bytes of one Ethernet frame that returns a
// verdict. It never allocates, never awaits and never throws on bad input; every frame is counted
// in frames_in and then exactly once more, in frames_out or under one drop reason.
//
//   ARP request for a VIP ........................ reply built in place (TX); cluster: owned VIPs only
//   TCP SYN to a VIP with a service ............... pick backend, create flow, rewrite (TX)
//     ... whose backend is unverified (SYN check) . copy into a hold slot (HOLD): control probes
//   TCP segment of a flow whose backend is DOWN ... on_backend_down reset: RST to the client (TX)
//   TCP segment of a known flow ................... rewrite (TX): dsr = MAC, nat = IP + MAC
//   TCP reply from a backend of a nat flow ........ reverse rewrite to the VIP (TX)
//   ICMP echo to a VIP, ICMP error about a flow ... answered / carried to the flow's other end (icmp.ts)
//   cluster: a non-SYN segment with no flow ....... adopted by its SYN's pick, then as a known flow
//   anything else ................................. DROP, counted by reason
//
// TX means: transmit buf[off, off+txLen) as it now is (txLen is the frame's length except for an
// RST built in its place, which is shorter). HOLD means: the packet path kept a copy of the frame
// (SynHold) and control will act on it; send nothing now. All checks that can fail come before
// the first write, so a dropped or held frame is left as it was.

import { u16, s32, setU16, macEq, macCopy, macIsBroadcast, macIsGroup, macIsZero } from '../wire/bytes';
import { ETH_DST, ETH_SRC, ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, VLAN_TAG_LEN, isVlanTpid, MAX_VLAN_TAGS } from '../wire/ethernet';
import { ARP_LEN, ARP_SHA, ARP_SPA, ARP_TPA, ARP_OP_REQUEST, ARP_OP_REPLY, arpIsEthIpv4, arpOper, arpMakeReplyInPlace } from '../wire/arp';
import { IP_MIN_HEADER_LEN, IP_TOTAL_LEN, IP_FLAGS_FRAG, IP_FLAG_MF, IP_FRAG_OFFSET_MASK, IP_TTL, IP_PROTO, IP_SRC, IP_DST, IPPROTO_TCP, IPPROTO_ICMP } from '../wire/ipv4';
import { TCP_MIN_HEADER_LEN, TCP_DOFF, TCP_FLAGS, TCP_CSUM, TCP_SYN, TCP_ACKF, TCP_RST, TCP_FIN } from '../wire/tcp';
import { sum16, fold, csumReplace32 } from '../wire/checksum';
import { Tables, MODE_NAT, Health, OnDown } from '../tables/services';
import { StateViews, PacketClock, NOW, newClock, MAX_BACKEND_SLOTS, B_STATE, B_VERIFIED, F_VIP, F_BACKIP, F_BACKEND, D_LAST, D_PKTS_IN, D_PKTS_OUT, B_CLIMAC } from './state';
import { SynHold, HOLD_HELD } from './hold';
import { resetInPlace } from './reset';
import { FlowTable, FS_SYN, FS_ESTABLISHED, FS_CLOSING, UPSERT_OK, UPSERT_CONFLICT } from './flows';
import { R_OP, R_STATE, R_MAC, R_CLI, R_VIP, R_PORTS, R_BACKIP, REPL_NEW, REPL_REFRESH } from '../shm/flow-record';
import { NeighbourTable } from './neighbours';
import { Drop, Ctr } from './counters';
import { hash2 } from '../tables/hash';
import { IcmpPath, ICMP_TX } from './icmp';
import { natRewriteIp, backendMacAt, setBackendMac } from './rewrite';

/**
 * New flows to one backend whose handshakes have not completed, in a row and for longer than the
 * probe timeout, that make it suspect (held and probed) however fresh its last check: a passive
 * check on real traffic, so a server that died while vouched for costs a few connections, not
 * max_age's worth (in dsr its refusals go straight to the clients; this is all vipgate sees).
 */
const SUSPECT_UNANSWERED = 4;

/** needsProbe: no; yes, nothing vouched for it lately; yes, even if something did (suspect). */
const PROBE_NO = 0, PROBE_STALE = 1, PROBE_MUST = 2;

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
/** The SYN was copied into a hold slot for the SYN-time check: send nothing (control will). */
export const VERDICT_HOLD = 2;

const SYN_ACK_RST_FIN = TCP_SYN | TCP_ACKF | TCP_RST | TCP_FIN;

export class Dataplane {
  /** The tables control published; replaced whole by publish(), read once per frame. */
  private tables: Tables;
  readonly flows: FlowTable;
  readonly neighbours: NeighbourTable;
  private readonly icmp: IcmpPath;
  readonly state: StateViews;
  private readonly c: Float64Array;
  /** This process's packet clock (state.ts PacketClock), shared with its flow and neighbour tables and ICMP path. */
  readonly clock: PacketClock;
  /** Drop reason of the last dropped frame (for tests and tracing), -1 after a TX or a HOLD. */
  lastDrop = -1;
  /** Length of the frame to transmit after VERDICT_TX (the input's, or a shorter RST's). */
  txLen = 0;
  /** The SYN-time check's hold queue (attachHold); null: SYNs are never held. */
  private hold: SynHold | null = null;
  /** While control runs a held SYN through again (runHeld): its slot; else -1. */
  private passSlot = -1;
  /**
   * Per backend slot: when a verified flow of it last completed its handshake (ms). A live
   * verified flow spares new SYNs the probe (JP2002-207647) only while such evidence is recent
   * (within max_age): in dsr vipgate never sees a dead server's RSTs, so a verified flow whose
   * client was reset stays "live" until it idles out, and must not vouch for the backend that
   * long. Kept by the packet path alone; lost on a restart, after which the next SYN is probed.
   */
  private readonly verifiedAt = new Float64Array(MAX_BACKEND_SLOTS);
  /** Per backend slot: new flows sent to it since one last completed its handshake, and since when. */
  private readonly unanswered = new Int32Array(MAX_BACKEND_SLOTS);
  private readonly unansweredSince = new Float64Array(MAX_BACKEND_SLOTS);

  constructor(state: StateViews, tables: Tables, clock: PacketClock = newClock()) {
    this.state = state;
    this.tables = tables;
    this.c = state.counters;
    this.clock = clock;
    this.flows = new FlowTable(state, clock);
    this.flows.journal = tables.cluster === 1 ? state.journal : null;
    this.neighbours = new NeighbourTable(state, clock);
    this.icmp = new IcmpPath(state, this.flows, this.neighbours);
  }

  /** Give the packet path a hold queue: SYNs for unverified backends are held there (tables.synCheckMaxAgeMs > 0). */
  attachHold(h: SynHold): void { this.hold = h; }
  get holdQueue(): SynHold | null { return this.hold; }

  /**
   * Swap in new tables; takes effect from the next frame. Existing flows keep their backend slots.
   * A slot given to a new backend starts with no SYN-time evidence: the one before it left
   * unanswered flows or verified handshakes that say nothing about this one.
   */
  publish(t: Tables): void {
    for (const s of t.newSlots) { this.unanswered[s] = 0; this.verifiedAt[s] = 0; }
    this.tables = t;
    this.flows.journal = t.cluster === 1 ? this.state.journal : null;
  }
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
    this.txLen = len;
    return VERDICT_TX;
  }

  /**
   * True when a new flow to backend b must wait for a probe (issue 8 item 5): the SYN check is on,
   * b is health-checked, and either its last SUSPECT_UNANSWERED new flows have gone unanswered for
   * longer than the probe timeout, or no check or probe answered within max_age and it has no live
   * verified flow whose handshake completed within max_age (see verifiedAt).
   */
  private needsProbe(t: Tables, b: number): number {
    const max = t.synCheckMaxAgeMs;
    if (max === 0 || this.hold === null || t.bChecked[b] === 0) return PROBE_NO;
    const v = this.state, now = this.clock[NOW]!;
    if (this.unanswered[b]! >= SUSPECT_UNANSWERED && now - this.unansweredSince[b]! > this.hold.unansweredMs) return PROBE_MUST;
    if (now - v.bHealthOkAt[b]! <= max) return PROBE_NO;
    return v.bVerified[b] === 0 || now - this.verifiedAt[b]! > max ? PROBE_STALE : PROBE_NO;
  }

  /**
   * Hold the SYN in buf for backend b. A SYN control is running through again is already in its
   * slot: it is queued again for b (moved there after its first backend failed). Returns
   * VERDICT_HOLD, a counted drop, or -1 when the frame does not fit a slot or every slot is taken
   * (forward it unprobed).
   */
  private holdSyn(buf: Uint8Array, off: number, len: number, b: number, svc: number, cli: number, vip: number, ports: number, mustProbe: boolean): number {
    const h = this.hold!;
    if (this.passSlot >= 0) {
      h.requeue(this.passSlot, b, svc, mustProbe);
    } else {
      if (!h.fits(len)) return -1;
      if (h.find(cli, vip, ports) >= 0) return this.drop(Drop.syn_hold_duplicate);
      // A full queue fails open: the SYN goes on unprobed, as it would with the check off, and is
      // counted. Dropping it instead would let a SYN flood (whose spoofed SYNs never complete a
      // handshake, so every backend soon looks suspect) fill the queue and shut out every real
      // client; failing open makes the check's worst case the behaviour without it.
      if (h.put(buf, off, len, b, svc, cli, vip, ports, this.clock[NOW]!, mustProbe) < 0) { this.c[Ctr.syn_hold_overflow]!++; return -1; }
    }
    this.c[Ctr.syn_held]!++;
    this.lastDrop = -1;
    return VERDICT_HOLD;
  }

  /**
   * A new flow's backend when control runs held SYN `slot` again: the usual pick unless that
   * backend failed the slot's probe; then the first usable member in preference order that has
   * not failed (one with a weight first), or -1.
   */
  private pickAvoiding(t: Tables, svc: number, h: number, slot: number): number {
    const hold = this.hold!;
    const b = t.pickBackend(svc, h);
    if (b < 0 || !hold.excludes(slot, b)) return b;
    const base = svc * t.orderStride;
    let zero = -1;
    for (let j = 0; j < t.orderStride; j++) {
      const m = t.svcOrder[base + j]!;
      if (m < 0) break;
      if (!t.usable(m) || hold.excludes(slot, m)) continue;
      if (t.bWeight[m]! > 0) return m;
      if (zero < 0) zero = m;
    }
    return zero;
  }

  /** Process one frame occupying buf[off, off+len) at time `now` (ms). Returns VERDICT_TX, VERDICT_DROP or VERDICT_HOLD. */
  process(buf: Uint8Array, off: number, len: number, now: number): number {
    this.clock[NOW] = now;
    return this.step(buf, off, len);
  }

  /** Set the packet path's clock (ms) for step() and the table methods. */
  setClock(now: number): void { this.clock[NOW] = now; }

  /**
   * process() with the time already set (setClock, or a store into clock[NOW]): for a
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
      if (proto === IPPROTO_ICMP) return frag ? this.drop(Drop.ip_fragment) : this.icmpVerdict(this.icmp.toVip(buf, off, l3, ihl, total, dst, t), len);
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
          const src = s32(buf, l3 + IP_SRC), ports = (u16(buf, l4 + 2) << 16) | u16(buf, l4);
          let f = this.flows.reverseLookup(src, dst, ports);
          if (f < 0 && t.cluster === 1 && (buf[l4 + TCP_FLAGS]! & TCP_RST) === 0) f = this.adoptFromBackend(buf, l3, l4, src, dst, ports, t);
          if (f >= 0) return this.fromBackend(buf, off, len, l3, l4, f, t);
        }
      }
    }
    if (t.mode === MODE_NAT && proto === IPPROTO_ICMP && !frag) return this.icmpVerdict(this.icmp.fromBackend(buf, off, l3, ihl, total, t), len);
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
    // Cluster: for a VIP another node answers now, that is its owner announcing it (issue 11).
    if (spa !== 0 && !macEq(buf, sha, t.mac, 0)) {
      const vi = t.vipIndex(spa);
      if (vi >= 0) return this.drop(t.vipArp[vi] === 1 ? Drop.arp_conflict : Drop.arp_peer_owner);
    }
    if (spa !== 0) this.neighbours.learn(spa, buf, sha);
    if (op === ARP_OP_REPLY) return this.drop(Drop.arp_reply);
    if (op !== ARP_OP_REQUEST) return this.drop(Drop.arp_unsupported);
    const tpa = s32(buf, l3 + ARP_TPA);
    const ti = t.vipIndex(tpa);
    if (ti < 0) return this.drop(Drop.arp_not_for_vip);
    if (t.vipArp[ti] !== 1) return this.drop(Drop.arp_not_owner);
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
      const ps = this.passSlot;
      // A new connection, or a new one reusing a closing flow's 5-tuple: (re-)steer it.
      let steer = f < 0 || v.fb[(f << 6) + B_STATE] === FS_CLOSING;
      if (!steer) {
        const back = v.fw[(f << 4) + F_BACKEND]!;
        if (ps >= 0 ? this.hold!.excludes(ps, back) : back < t.backendSlots && t.bHealth[back] === Health.down) {
          // Its backend failed the probe, or is DOWN: the client's retry becomes a new connection elsewhere.
          steer = true;
        } else {
          // A retransmitted SYN of a half-open flow is a sign its backend did not answer (issue 8):
          // with the SYN check on, hold it and probe that backend at once; control re-steers it on failure.
          if (ps < 0 && v.fb[(f << 6) + B_STATE] === FS_SYN && t.synCheckMaxAgeMs > 0 && this.hold !== null &&
              back < t.backendSlots && t.bChecked[back] === 1) {
            const r = this.holdSyn(buf, off, len, back, t.serviceIndex(vip, dport), cli, vip, ports, true);
            if (r >= 0) return r;
          }
          c[Ctr.syn_retransmits]!++;
        }
      }
      if (steer) {
        const svc = t.serviceIndex(vip, dport);
        if (svc < 0) return this.drop(Drop.no_service);
        const h = hash2(cli, ports, PICK_SEED) >>> 8;
        const b = ps >= 0 ? this.pickAvoiding(t, svc, h, ps) : t.pickBackend(svc, h);
        if (b < 0) return this.drop(Drop.no_backend);
        // A SYN control releases for the backend it was held for is never held for it again.
        const probe = ps >= 0 && this.hold!.backend[ps] === b ? PROBE_NO : this.needsProbe(t, b);
        if (probe !== PROBE_NO) {
          const r = this.holdSyn(buf, off, len, b, svc, cli, vip, ports, probe === PROBE_MUST);
          if (r >= 0) return r;
        }
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
        f = flows.insert(cli, vip, ports, b, backIp, rslot, buf, off + ETH_SRC, FS_SYN);
        if (f < 0) return this.drop(Drop.flow_table_full);
        if (t.synCheckMaxAgeMs > 0) {
          const now = this.clock[NOW]!;
          // Sent while its backend is vouched for (a check or probe within max_age): a verified flow.
          if (now - v.bHealthOkAt[b]! <= t.synCheckMaxAgeMs) flows.markVerified(f);
          // Released after b answered its probe: b is not suspect, whatever came before.
          if (ps >= 0 && this.hold!.backend[ps] === b) this.unanswered[b] = 0;
          if (this.unanswered[b]++ === 0) this.unansweredSince[b] = now;
        }
      }
    } else {
      if (f < 0) {
        // Cluster: a peer's connection whose record has not arrived (a takeover): the pick its SYN got.
        if (t.cluster === 0 || (control & TCP_RST) !== 0) return this.drop(Drop.unknown_flow);
        f = this.adopt(buf, off, l3, cli, vip, ports, dport, (control & TCP_FIN) !== 0 ? FS_CLOSING : FS_ESTABLISHED, t);
        if (f < 0) return this.drop(-f - 1);
        return this.toBackend(buf, off, len, l3, l4, f, -1, t);
      }
      const st = v.fb[(f << 6) + B_STATE]!;
      const back = v.fw[(f << 4) + F_BACKEND]!;
      // A flow on a backend whose health is DOWN (issue 8 item 3): on_backend_down reset answers the
      // client with an RST at its next segment (never to an RST), so no connection hangs on a black hole.
      if (back < t.backendSlots && t.bHealth[back] === Health.down && (control & TCP_RST) === 0) {
        const svc = t.serviceIndex(vip, dport);
        if (svc >= 0 && t.svcOnDown[svc] === OnDown.reset) {
          const n = resetInPlace(buf, off, l3, l4, t.mac);
          flows.close(f);
          v.fd[(f << 3) + D_LAST] = this.clock[NOW]!;
          c[Ctr.backend_down_resets]!++;
          return this.tx(n);
        }
      }
      if (control & (TCP_RST | TCP_FIN)) next = FS_CLOSING;
      else if (st === FS_SYN && (control & TCP_ACKF)) next = FS_ESTABLISHED;
    }
    return this.toBackend(buf, off, len, l3, l4, f, next, t);
  }

  /**
   * Cluster (issue 11): make a flow for a non-SYN segment of a connection this node has no record
   * of, with the backend its SYN got from the same tables (the pick is a hash of the client's
   * address and ports: every node with the same tables picks the same, so a connection a dead
   * peer steered goes on to the same backend). Same checks as a SYN before anything is written.
   * Returns the slot (journalled NEW, counted flows_adopted) or -(drop reason + 1).
   */
  private adopt(buf: Uint8Array, off: number, l3: number, cli: number, vip: number, ports: number, dport: number, state: number, t: Tables): number {
    const svc = t.serviceIndex(vip, dport);
    if (svc < 0) return -Drop.no_service - 1;
    const b = t.pickBackend(svc, hash2(cli, ports, PICK_SEED) >>> 8);
    if (b < 0) return -Drop.no_backend - 1;
    const backIp = t.bIp[b]!;
    if (t.bHasMac[b] === 0 && this.neighbours.lookup(backIp) < 0) return -Drop.backend_unresolved - 1;
    let rslot = -1;
    if (t.mode === MODE_NAT) {
      if (buf[l3 + IP_TTL]! <= 1) return -Drop.ttl_exceeded - 1;
      if (this.flows.reverseLookup(backIp, cli, ports) >= 0) return -Drop.nat_conflict - 1;
      rslot = this.flows.reverseFreeSlot(backIp, cli, ports);
      if (rslot < 0) return -Drop.flow_table_full - 1;
    }
    const f = this.flows.insert(cli, vip, ports, b, backIp, rslot, buf, off + ETH_SRC, state);
    if (f < 0) return -Drop.flow_table_full - 1;
    this.c[Ctr.flows_adopted]!++;
    return f;
  }

  /**
   * Cluster, nat: a backend's segment (src backIp, to client `cli`, `ports` = client port << 16 |
   * its own port) of a connection with no flow here: adopted when exactly one VIP's service on that
   * port picks this backend for (cli, ports), the way its SYN was steered. Visits every VIP slot
   * (bounded by the VIP count). The client's MAC comes from the neighbour table; a client this
   * node has no ARP entry for (one behind a router) waits for its own next segment instead.
   * Returns the slot or -1 (the caller drops the frame as before: not_for_us).
   */
  private adoptFromBackend(buf: Uint8Array, l3: number, l4: number, backIp: number, cli: number, ports: number, t: Tables): number {
    const b = t.backendByIp(backIp);
    if (b < 0 || (buf[l4 + TCP_FLAGS]! & TCP_SYN) !== 0) return -1;
    const port = ports & 0xffff, h = hash2(cli, ports, PICK_SEED) >>> 8;
    let vip = 0, found = 0;
    for (let s = 0; s <= t.vipMask; s++) {
      if (t.vipVals[s] === 0) continue;
      const svc = t.serviceIndex(t.vipKeys[s]!, port);
      if (svc >= 0 && t.pickBackend(svc, h) === b) { vip = t.vipKeys[s]!; found++; }
    }
    if (found !== 1 || buf[l3 + IP_TTL]! <= 1) return -1;
    const n = this.neighbours.lookup(cli);
    if (n < 0) return -1;
    const flows = this.flows;
    if (flows.lookup(cli, vip, ports) >= 0) return -1; // its flow names another backend: not this one's
    const rslot = flows.reverseFreeSlot(backIp, cli, ports);
    if (rslot < 0) return -1;
    const f = flows.insert(cli, vip, ports, b, backIp, rslot, this.state.nMac, n << 3, (buf[l4 + TCP_FLAGS]! & TCP_FIN) !== 0 ? FS_CLOSING : FS_ESTABLISHED);
    if (f >= 0) this.c[Ctr.flows_adopted]!++;
    return f;
  }

  /**
   * Cluster (issue 11): upsert up to `max` of the peers' flow records waiting in the import ring
   * (the worker calls it each batch and each idle poll, with the clock set). Each is checked (op,
   * state, no address or port 0); its backend address maps to this node's slot through the
   * current tables. Never journals. Allocation-free. Returns the records taken.
   */
  importFlows(max: number): number {
    const ring = this.state.imports;
    let n = ring.readable();
    if (n === 0) return 0;
    if (n > max) n = max;
    const t = this.tables, c = this.c, d = ring.data, flows = this.flows, nat = t.mode === MODE_NAT;
    const journal = flows.journal;
    flows.journal = null; // a lazy expiry met on the way is not news for the peers either
    for (let i = 0; i < n; i++) {
      const at = ring.offsetOf(i);
      const op = d[at + R_OP]!, st = d[at + R_STATE]!;
      const cli = ring.i32At(at + R_CLI), vip = ring.i32At(at + R_VIP), ports = ring.i32At(at + R_PORTS), backIp = ring.i32At(at + R_BACKIP);
      if (op < REPL_NEW || op > REPL_REFRESH || st < FS_SYN || st > FS_CLOSING || cli === 0 || vip === 0 || backIp === 0 ||
          (ports & 0xffff) === 0 || (ports >>> 16) === 0) { c[Ctr.repl_rejected]!++; continue; }
      const b = t.backendByIp(backIp);
      if (b < 0) { c[Ctr.repl_no_backend]!++; continue; }
      const r = flows.upsert(op, st, d, at + R_MAC, cli, vip, ports, b, backIp, nat);
      if (r === UPSERT_OK) c[Ctr.repl_imported]!++;
      else if (r === UPSERT_CONFLICT) c[Ctr.repl_rejected]!++;
      else c[Ctr.repl_table_full]!++;
    }
    ring.advance(n);
    flows.journal = journal;
    return n;
  }

  /**
   * Flow f's handshake with backend b completed: fresh evidence that b answers. It is not suspect
   * any more, and a verified flow renews what vouches for it (see verifiedAt).
   */
  private answered(f: number, b: number): void {
    this.unanswered[b] = 0;
    if (this.state.fb[(f << 6) + B_VERIFIED] === 1) this.verifiedAt[b] = this.clock[NOW]!;
  }

  /** Rewrite a client's segment of flow f for its backend and transmit it. */
  private toBackend(buf: Uint8Array, off: number, len: number, l3: number, l4: number, f: number, next: number, t: Tables): number {
    const v = this.state, w = f << 4, d = f << 3;
    const b = v.fw[w + F_BACKEND]!;
    const m = backendMacAt(t, this.neighbours, b, v.fw[w + F_BACKIP]!);
    if (m >= 0) return this.drop(m);
    if (t.mode === MODE_NAT) {
      const ttl = buf[l3 + IP_TTL]!;
      if (ttl <= 1) return this.drop(Drop.ttl_exceeded);
      natRewrite(buf, l3, l4, IP_DST, v.fw[w + F_VIP]!, v.fw[w + F_BACKIP]!, ttl);
    }
    setBackendMac(buf, off + ETH_DST, t, v.nMac, b, m);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    if (next === FS_CLOSING) this.flows.close(f);
    else if (next === FS_ESTABLISHED) {
      this.flows.establish(f);
      this.answered(f, b); // the client acknowledged the backend's SYN-ACK
    }
    v.fd[d + D_LAST] = this.clock[NOW]!;
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
    if (flags & (TCP_RST | TCP_FIN)) {
      // The backend refused a SYN (its server is gone): its verified flows no longer vouch for it,
      // so the next SYN is probed and moved instead of being refused too.
      if ((flags & TCP_RST) && v.fb[sb] === FS_SYN) this.verifiedAt[v.fw[w + F_BACKEND]!] = 0;
      this.flows.close(f);
    }
    else if (v.fb[sb] === FS_SYN && (flags & (TCP_SYN | TCP_ACKF)) === (TCP_SYN | TCP_ACKF)) {
      this.flows.establish(f);
      this.answered(f, v.fw[w + F_BACKEND]!);
    }
    natRewrite(buf, l3, l4, IP_SRC, v.fw[w + F_BACKIP]!, v.fw[w + F_VIP]!, ttl);
    macCopy(buf, off + ETH_DST, v.fb, (f << 6) + B_CLIMAC);
    macCopy(buf, off + ETH_SRC, t.mac, 0);
    v.fd[d + D_LAST] = this.clock[NOW]!;
    v.fd[d + D_PKTS_OUT]!++;
    this.c[Ctr.forwarded]!++;
    this.c[Ctr.forwarded_to_client]!++;
    return this.tx(len);
  }

  /**
   * Control, after the probe of held SYN `slot`: run it through the packet path again at `now`
   * (control has written the probe's outcome: bHealthOkAt on success, hold.exclude on failure).
   * TX: send hold.frames[slot][0, txLen) (forwarded, or moved to another member); HOLD: held
   * again, for the member it moved to; DROP: no_backend (no member left: answer it with
   * resetHeld) or another counted reason (the client retransmits).
   */
  runHeld(slot: number, now: number): number {
    const h = this.hold!;
    this.passSlot = slot;
    try {
      return this.process(h.frames[slot]!, 0, h.len[slot]!, now);
    } finally {
      this.passSlot = -1;
    }
  }

  /**
   * Control: turn held SYN `slot` into the RST its client gets (syn_check on_fail: reset, or no
   * member left), in its slot; a half-open flow of the same connection is closed. Returns the
   * frame length to send from hold.frames[slot].
   */
  resetHeld(slot: number, now: number): number {
    const h = this.hold!, buf = h.frames[slot]!;
    if (h.state[slot] !== HOLD_HELD) throw new Error(`resetHeld: slot ${slot} holds nothing`);
    // The frame passed step()'s checks when it was held: only the offsets are needed again.
    let p = 12;
    while (isVlanTpid(u16(buf, p))) p += VLAN_TAG_LEN;
    const l3 = p + 2, l4 = l3 + ((buf[l3]! & 0x0f) << 2);
    this.clock[NOW] = now;
    const f = this.flows.lookup(h.keyCli[slot]!, h.keyVip[slot]!, h.keyPorts[slot]!);
    if (f >= 0) this.flows.close(f);
    return resetInPlace(buf, 0, l3, l4, this.tables.mac);
  }

  /**
   * Where in the flow table frame buf[off, off+len) will first read (FlowTable.forwardHint or
   * reverseHint; -1: nowhere worth fetching), reading only the frame: a batch computes this for
   * every frame, then FlowTable.touchAll loads those lines in one tight loop, so the batch's cache
   * misses on a large flow table overlap instead of each frame waiting on its own (issue 10).
   * Untagged IPv4 TCP only (anything else is left to step()); nothing is checked beyond what the
   * reads need to stay inside the frame.
   */
  hint(buf: Uint8Array, off: number, len: number): number {
    if (len < ETH_HEADER_LEN + IP_MIN_HEADER_LEN + TCP_MIN_HEADER_LEN || u16(buf, off + 12) !== ETHERTYPE_IPV4) return -1;
    const l3 = off + ETH_HEADER_LEN;
    const ihl = (buf[l3]! & 0x0f) << 2;
    if (buf[l3 + IP_PROTO] !== IPPROTO_TCP || ihl < IP_MIN_HEADER_LEN || ETH_HEADER_LEN + ihl + TCP_MIN_HEADER_LEN > len) return -1;
    const l4 = l3 + ihl, t = this.tables;
    const src = s32(buf, l3 + IP_SRC), dst = s32(buf, l3 + IP_DST);
    if (t.vipIndex(dst) >= 0) return this.flows.forwardHint(src, dst, (u16(buf, l4) << 16) | u16(buf, l4 + 2));
    if (t.mode === MODE_NAT) return this.flows.reverseHint(src, dst, (u16(buf, l4 + 2) << 16) | u16(buf, l4));
    return -1;
  }

  /** Expire idle flows, a slice at a time; call from a timer (live) or every so often (replay). */
  sweep(now: number, budget: number): number { this.clock[NOW] = now; return this.flows.sweep(budget); }
}
