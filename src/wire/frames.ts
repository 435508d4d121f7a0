// Whole frames built from the parsed forms (emit), with correct checksums: for control code
// (announcements), tests, scenarios and benchmarks. Never used on the packet path.

import { emitEthernet, ETHERTYPE_ARP, ETHERTYPE_IPV4, VlanTag, ETHERTYPE_VLAN } from './ethernet';
import { emitArp, ARP_OP_REQUEST } from './arp';
import { emitIpv4, IPPROTO_TCP, IPPROTO_ICMP, IP_TOTAL_LEN } from './ipv4';
import { emitIcmp, IcmpEmit } from './icmp';
import { emitTcp, tcpChecksum, TcpEmit } from './tcp';
import { parseIpv4 } from './addr';
import { setU16, u16 } from './bytes';

export const BCAST = 'ff:ff:ff:ff:ff:ff';

export function vlan(vid: number, tpid = ETHERTYPE_VLAN): VlanTag {
  return { tpid, pcp: 0, dei: false, vid };
}

export interface ArpFrame {
  src: string; dst?: string; oper?: number; senderMac?: string; senderIp: string;
  targetMac?: string; targetIp: string; vlans?: VlanTag[]; pad?: boolean;
}

/** e.g. arp({src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100'}) = "ARP, Request who-has 10.0.0.100 tell 10.0.0.7" */
export function arp(a: ArpFrame): Buffer {
  const buf = Buffer.alloc(64);
  const l3 = emitEthernet({ dst: a.dst ?? BCAST, src: a.src, vlans: a.vlans ?? [], etherType: ETHERTYPE_ARP }, buf, 0);
  const n = emitArp({
    oper: a.oper ?? ARP_OP_REQUEST, senderMac: a.senderMac ?? a.src, senderIp: a.senderIp,
    targetMac: a.targetMac ?? '00:00:00:00:00:00', targetIp: a.targetIp,
  }, buf, l3);
  const len = a.pad ? Math.max(60, l3 + n) : l3 + n;
  return buf.subarray(0, len);
}

export interface TcpFrame extends TcpEmit {
  srcMac: string; dstMac: string; src: string; dst: string;
  vlans?: VlanTag[]; ttl?: number; payload?: Uint8Array | string; id?: number;
  mf?: boolean; fragOffset?: number; ipOptions?: Uint8Array;
}

/** e.g. tcp({..., src:'10.0.0.7', sport: 40000, dst:'10.0.0.100', dport: 80, flags: SYN}) */
export function tcp(f: TcpFrame): Buffer {
  const payload = typeof f.payload === 'string' ? Buffer.from(f.payload) : (f.payload ?? new Uint8Array(0));
  const buf = Buffer.alloc(14 + 8 + 60 + 60 + payload.length + 64);
  const l3 = emitEthernet({ dst: f.dstMac, src: f.srcMac, vlans: f.vlans ?? [], etherType: ETHERTYPE_IPV4 }, buf, 0);
  const ihl = 20 + (f.ipOptions?.length ?? 0);
  const l4 = l3 + ihl;
  const thl = emitTcp(f, buf, l4);
  buf.set(payload, l4 + thl);
  const l4len = thl + payload.length;
  emitIpv4({
    totalLength: ihl + l4len, protocol: IPPROTO_TCP, src: f.src, dst: f.dst, ttl: f.ttl ?? 64, id: f.id ?? 1,
    df: !f.mf && !f.fragOffset, mf: f.mf, fragOffset: f.fragOffset, options: f.ipOptions,
  }, buf, l3);
  setU16(buf, l4 + 16, tcpChecksum(buf, l4, l4len, parseIpv4(f.src)!, parseIpv4(f.dst)!));
  return buf.subarray(0, Math.max(60, l4 + l4len));
}

export interface IcmpFrame {
  srcMac: string; dstMac: string; src: string; dst: string;
  vlans?: VlanTag[]; ttl?: number; ipId?: number; df?: boolean; mf?: boolean; ipOptions?: Uint8Array;
  icmp: IcmpEmit;
}

/** e.g. icmp({..., src: '10.0.0.7', dst: '10.0.0.100', icmp: {type: ICMP_ECHO_REQUEST, id: 1, seq: 1}}) = "ICMP echo request" */
export function icmp(f: IcmpFrame): Buffer {
  const dataLen = f.icmp.data?.length ?? 0;
  const buf = Buffer.alloc(14 + 8 + 60 + 8 + dataLen + 64);
  const l3 = emitEthernet({ dst: f.dstMac, src: f.srcMac, vlans: f.vlans ?? [], etherType: ETHERTYPE_IPV4 }, buf, 0);
  const ihl = 20 + (f.ipOptions?.length ?? 0);
  const n = emitIcmp(f.icmp, buf, l3 + ihl);
  emitIpv4({
    totalLength: ihl + n, protocol: IPPROTO_ICMP, src: f.src, dst: f.dst, ttl: f.ttl ?? 64, id: f.ipId ?? 1,
    df: f.df ?? false, mf: f.mf, options: f.ipOptions,
  }, buf, l3);
  return buf.subarray(0, Math.max(60, l3 + ihl + n));
}

/**
 * The IPv4 datagram carried by an Ethernet frame, cut to its first `n` bytes (whole by default):
 * what a router quotes in an ICMP error about it (RFC 792: the IP header and at least 8 bytes).
 */
export function ipDatagram(frame: Uint8Array, n = Infinity): Uint8Array {
  let p = 12;
  for (let tags = 0; tags < 2 && u16(frame, p) !== ETHERTYPE_IPV4; tags++) p += 4;
  if (u16(frame, p) !== ETHERTYPE_IPV4) throw new Error('ipDatagram: not an IPv4 frame (with at most two VLAN tags)');
  const l3 = p + 2;
  return Uint8Array.from(frame.subarray(l3, l3 + Math.min(n, u16(frame, l3 + IP_TOTAL_LEN))));
}
