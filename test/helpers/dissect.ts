// A small dissector for tests: summarises one Ethernet frame using ONLY the parsed forms in
// src/wire (parseEthernet, parseArp, parseIpv4Header, parseTcp) plus tcpChecksumOk, so that
// the conformance test compares what src/wire understands with what tshark reports.
//
// Scope: Ethernet II with up to two VLAN tags; ARP (Ethernet/IPv4); IPv4; TCP over IPv4.
// IPv6, UDP, ICMP and anything else are only recognised by their ethertype / protocol number.

import { parseEthernet, EthernetRepr, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../../src/wire/ethernet';
import { parseArp, ArpRepr, ARP_OP_REQUEST, ARP_OP_REPLY, arpIsGratuitous } from '../../src/wire/arp';
import { parseIpv4Header, Ipv4Repr, Ipv4ParseError, IPPROTO_TCP } from '../../src/wire/ipv4';
import { parseTcp, TcpRepr, TcpParseError, tcpChecksumOk, TCP_SYN, TCP_ACKF, TCP_RST, TCP_FIN } from '../../src/wire/tcp';
import { parseIpv4 } from '../../src/wire/addr';

export type ChecksumStatus = 'good' | 'bad' | 'unverified';

export interface Ipv4Summary {
  repr: Ipv4Repr;
  /** MF set or a non-zero fragment offset (RFC 791 §3.2). */
  fragment: boolean;
  /** False when fewer than totalLength bytes from l3 were captured. */
  complete: boolean;
}

export interface TcpSummary {
  repr: TcpRepr;
  /**
   * 'unverified' when the whole segment is not in hand: the frame was snapped, or the segment
   * is the first of several IP fragments (tshark verifies neither without reassembly).
   */
  checksum: ChecksumStatus;
}

export interface FrameSummary {
  capLen: number;
  origLen: number;
  /** Captured fewer bytes than were on the wire (caplen < len). */
  truncated: boolean;
  /** null when shorter than an Ethernet header or a VLAN tag is cut off. */
  eth: EthernetRepr | null;
  /** The type field right after the MAC addresses: a TPID when the frame is tagged. */
  outerEtherType: number | null;
  /** The ethertype after all tags we take off. */
  etherType: number | null;
  vlanCount: number;
  /** null: not ARP; 'malformed': ethertype ARP but not a whole Ethernet/IPv4 ARP packet. */
  arp: ArpRepr | 'malformed' | null;
  /** null: not IPv4 by ethertype. */
  ipv4: Ipv4Summary | Ipv4ParseError | null;
  /** null: not TCP (or a non-first fragment, whose TCP header is elsewhere). */
  tcp: TcpSummary | TcpParseError | null;
  /** Why this frame is malformed (empty when it is not); a snapped frame is not malformed. */
  malformed: string[];
}

/** Summarise one Ethernet frame; `origLen` is the length on the wire (defaults to the captured length). */
export function dissect(data: Uint8Array, origLen = data.length): FrameSummary {
  const capLen = data.length;
  const truncated = capLen < origLen;
  const s: FrameSummary = {
    capLen, origLen, truncated, eth: null, outerEtherType: null, etherType: null, vlanCount: 0,
    arp: null, ipv4: null, tcp: null, malformed: [],
  };
  const eth = parseEthernet(data, 0, capLen);
  if (eth === null) {
    if (!truncated) s.malformed.push('ethernet: short');
    return s;
  }
  s.eth = eth;
  s.vlanCount = eth.vlans.length;
  s.outerEtherType = eth.vlans.length > 0 ? eth.vlans[0]!.tpid : eth.etherType;
  s.etherType = eth.etherType;
  const l3 = eth.l3;
  const avail = capLen - l3;

  if (eth.etherType === ETHERTYPE_ARP) {
    const arp = parseArp(data, l3, avail);
    s.arp = arp ?? 'malformed';
    if (arp === null && !truncated) s.malformed.push('arp: short or not Ethernet/IPv4');
    return s;
  }

  if (eth.etherType !== ETHERTYPE_IPV4) return s;
  const ip = parseIpv4Header(data, l3, avail);
  if (typeof ip === 'string') {
    s.ipv4 = ip;
    if (!(ip === 'truncated' && truncated)) s.malformed.push(`ipv4: ${ip}`);
    return s;
  }
  const complete = avail >= ip.totalLength;
  s.ipv4 = { repr: ip, fragment: ip.mf || ip.fragOffset !== 0, complete };
  if (!complete && !truncated) s.malformed.push('ipv4: total length beyond the frame');

  if (ip.protocol !== IPPROTO_TCP || ip.fragOffset !== 0) return s;
  // the segment is what the IP total length says, cut to what was captured (never the
  // Ethernet padding after it)
  const l4 = l3 + ip.ihl;
  const l4avail = Math.min(avail, ip.totalLength) - ip.ihl;
  const tcp = parseTcp(data, l4, l4avail);
  if (typeof tcp === 'string') {
    s.tcp = tcp;
    if (!(tcp === 'truncated' && truncated)) s.malformed.push(`tcp: ${tcp}`);
    return s;
  }
  let checksum: ChecksumStatus = 'unverified';
  if (complete && !ip.mf) {
    const l4len = ip.totalLength - ip.ihl;
    checksum = tcpChecksumOk(data, l4, l4len, parseIpv4(ip.src)!, parseIpv4(ip.dst)!) ? 'good' : 'bad';
  }
  s.tcp = { repr: tcp, checksum };
  if (tcp.options.malformed) s.malformed.push('tcp: options');
  return s;
}

// ---- classification helpers shared by tests (the definitions tshark's counts use) ----

export function arpOf(s: FrameSummary): ArpRepr | null {
  return s.arp !== null && s.arp !== 'malformed' ? s.arp : null;
}
export function isArpRequest(s: FrameSummary): boolean { return arpOf(s)?.oper === ARP_OP_REQUEST; }
export function isArpReply(s: FrameSummary): boolean { return arpOf(s)?.oper === ARP_OP_REPLY; }
export function isArpGratuitous(s: FrameSummary): boolean { const a = arpOf(s); return a !== null && arpIsGratuitous(a); }

export function ipv4Of(s: FrameSummary): Ipv4Summary | null {
  return s.ipv4 !== null && typeof s.ipv4 !== 'string' ? s.ipv4 : null;
}
export function tcpOf(s: FrameSummary): TcpSummary | null {
  return s.tcp !== null && typeof s.tcp !== 'string' ? s.tcp : null;
}
function flags(s: FrameSummary): number { return tcpOf(s)?.repr.flags ?? 0; }
/** A connection request: SYN set, ACK clear (whatever else is set). */
export function isSyn(s: FrameSummary): boolean { return (flags(s) & (TCP_SYN | TCP_ACKF)) === TCP_SYN; }
export function isSynAck(s: FrameSummary): boolean { return (flags(s) & (TCP_SYN | TCP_ACKF)) === (TCP_SYN | TCP_ACKF); }
export function isRst(s: FrameSummary): boolean { return (flags(s) & TCP_RST) !== 0; }
export function isFin(s: FrameSummary): boolean { return (flags(s) & TCP_FIN) !== 0; }

/** One line, tcpdump-like, for failure messages. */
export function describe(s: FrameSummary): string {
  const parts: string[] = [`${s.capLen}/${s.origLen}B`];
  if (s.eth) parts.push(`${s.eth.src} > ${s.eth.dst}` + s.eth.vlans.map((v) => ` vlan ${v.vid}`).join('') + ` type 0x${s.eth.etherType.toString(16).padStart(4, '0')}`);
  const a = arpOf(s);
  if (a) parts.push(`arp op ${a.oper} ${a.senderIp} -> ${a.targetIp}`);
  else if (s.arp) parts.push('arp malformed');
  const ip = ipv4Of(s);
  if (ip) parts.push(`${ip.repr.src} > ${ip.repr.dst} proto ${ip.repr.protocol}${ip.fragment ? ` frag ${ip.repr.fragOffset}${ip.repr.mf ? '+' : ''}` : ''}${ip.repr.checksumOk ? '' : ' bad-ip-csum'}`);
  else if (s.ipv4) parts.push(`ipv4 ${s.ipv4}`);
  const tcp = tcpOf(s);
  if (tcp) parts.push(`tcp ${tcp.repr.srcPort} > ${tcp.repr.dstPort} flags 0x${tcp.repr.flags.toString(16)} csum ${tcp.checksum}`);
  else if (s.tcp) parts.push(`tcp ${s.tcp}`);
  if (s.malformed.length) parts.push(`MALFORMED(${s.malformed.join('; ')})`);
  return parts.join(' | ');
}
