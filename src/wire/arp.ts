// ARP for Ethernet/IPv4 (RFC 826). Offsets are from the start of the ARP header (l3).
//
//  0      2      4    5    6      8            14           18           24           28
//  +------+------+----+----+------+------------+------------+------------+------------+
//  | htype| ptype|hlen|plen| oper | sender MAC | sender IP  | target MAC | target IP  |
//  +------+------+----+----+------+------------+------------+------------+------------+

import { u16, u32, s32, setU16, setU32, macCopy } from './bytes';
import { formatIpv4, formatMac, parseIpv4, parseMac } from './addr';
import { ETHERTYPE_IPV4 } from './ethernet';

export const ARP_HTYPE = 0;
export const ARP_PTYPE = 2;
export const ARP_HLEN = 4;
export const ARP_PLEN = 5;
export const ARP_OPER = 6;
export const ARP_SHA = 8;
export const ARP_SPA = 14;
export const ARP_THA = 18;
export const ARP_TPA = 24;
/** Length of an Ethernet/IPv4 ARP packet. */
export const ARP_LEN = 28;

export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

/** True when the fixed part says Ethernet/IPv4 (the only ARP we speak). Caller checked ARP_LEN. */
export function arpIsEthIpv4(buf: Uint8Array, l3: number): boolean {
  return u16(buf, l3 + ARP_HTYPE) === ARP_HTYPE_ETHERNET && u16(buf, l3 + ARP_PTYPE) === ETHERTYPE_IPV4 &&
    buf[l3 + ARP_HLEN] === 6 && buf[l3 + ARP_PLEN] === 4;
}
export function arpOper(buf: Uint8Array, l3: number): number { return u16(buf, l3 + ARP_OPER); }
export function arpSpa(buf: Uint8Array, l3: number): number { return u32(buf, l3 + ARP_SPA); }
export function arpTpa(buf: Uint8Array, l3: number): number { return u32(buf, l3 + ARP_TPA); }

/**
 * Turn the request at l3 into its reply, in place: the target becomes the requester and the
 * sender becomes (`mac`, `ip`). RFC 826 "swap hardware and protocol fields, putting the local
 * hardware and protocol addresses in the sender fields, set opcode to reply".
 */
export function arpMakeReplyInPlace(buf: Uint8Array, l3: number, mac: Uint8Array, ip: number): void {
  const requesterIp = s32(buf, l3 + ARP_SPA); // signed: no heap number per packet (see s32)
  macCopy(buf, l3 + ARP_THA, buf, l3 + ARP_SHA);
  setU32(buf, l3 + ARP_TPA, requesterIp);
  macCopy(buf, l3 + ARP_SHA, mac, 0);
  setU32(buf, l3 + ARP_SPA, ip);
  setU16(buf, l3 + ARP_OPER, ARP_OP_REPLY);
}

// ---- parsed form ----

export interface ArpRepr {
  htype: number; ptype: number; hlen: number; plen: number;
  oper: number;
  senderMac: string; senderIp: string;
  targetMac: string; targetIp: string;
}

/** Parse an ARP packet; null when shorter than the Ethernet/IPv4 form or not Ethernet/IPv4. */
export function parseArp(buf: Uint8Array, l3: number, len: number): ArpRepr | null {
  if (len < ARP_LEN || !arpIsEthIpv4(buf, l3)) return null;
  return {
    htype: u16(buf, l3), ptype: u16(buf, l3 + 2), hlen: buf[l3 + 4]!, plen: buf[l3 + 5]!,
    oper: arpOper(buf, l3),
    senderMac: formatMac(buf, l3 + ARP_SHA), senderIp: formatIpv4(arpSpa(buf, l3)),
    targetMac: formatMac(buf, l3 + ARP_THA), targetIp: formatIpv4(arpTpa(buf, l3)),
  };
}

/** Gratuitous ARP: sender IP equals target IP (RFC 5227 §3 "ARP Announcement"). */
export function arpIsGratuitous(r: ArpRepr): boolean {
  return r.senderIp === r.targetIp;
}

export function emitArp(r: Omit<ArpRepr, 'htype' | 'ptype' | 'hlen' | 'plen'>, buf: Uint8Array, l3: number): number {
  const sm = parseMac(r.senderMac), tm = parseMac(r.targetMac);
  const si = parseIpv4(r.senderIp), ti = parseIpv4(r.targetIp);
  if (!sm || !tm || si === null || ti === null) throw new Error('arp: bad address in repr');
  setU16(buf, l3 + ARP_HTYPE, ARP_HTYPE_ETHERNET);
  setU16(buf, l3 + ARP_PTYPE, ETHERTYPE_IPV4);
  buf[l3 + ARP_HLEN] = 6;
  buf[l3 + ARP_PLEN] = 4;
  setU16(buf, l3 + ARP_OPER, r.oper);
  macCopy(buf, l3 + ARP_SHA, sm, 0);
  setU32(buf, l3 + ARP_SPA, si);
  macCopy(buf, l3 + ARP_THA, tm, 0);
  setU32(buf, l3 + ARP_TPA, ti);
  return ARP_LEN;
}
