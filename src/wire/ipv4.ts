// IPv4 header (RFC 791). Offsets from the start of the IP header (l3).
//
//  0       1       2               4               6               8       9       10              12
//  +-------+-------+---------------+---------------+---------------+-------+-------+---------------+
//  |ver|ihl|  tos  | total length  | identification|flags|frag off |  ttl  | proto | hdr checksum  |
//  +-------+-------+---------------+---------------+---------------+-------+-------+---------------+
//  12 source address 16 destination address 20 options (ihl*4 - 20 bytes)

import { u16, u32, setU16, setU32 } from './bytes';
import { checksum, sum16, fold } from './checksum';
import { formatIpv4, parseIpv4 } from './addr';

export const IP_VER_IHL = 0;
export const IP_TOS = 1;
export const IP_TOTAL_LEN = 2;
export const IP_ID = 4;
export const IP_FLAGS_FRAG = 6;
export const IP_TTL = 8;
export const IP_PROTO = 9;
export const IP_CSUM = 10;
export const IP_SRC = 12;
export const IP_DST = 16;
export const IP_MIN_HEADER_LEN = 20;

export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;
export const IP_FRAG_OFFSET_MASK = 0x1fff;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export function ipVersion(buf: Uint8Array, l3: number): number { return buf[l3]! >>> 4; }
/** Header length in bytes (IHL × 4). */
export function ipHeaderLen(buf: Uint8Array, l3: number): number { return (buf[l3]! & 0x0f) << 2; }
export function ipTotalLen(buf: Uint8Array, l3: number): number { return u16(buf, l3 + IP_TOTAL_LEN); }
export function ipProto(buf: Uint8Array, l3: number): number { return buf[l3 + IP_PROTO]!; }
export function ipTtl(buf: Uint8Array, l3: number): number { return buf[l3 + IP_TTL]!; }
export function ipSrc(buf: Uint8Array, l3: number): number { return u32(buf, l3 + IP_SRC); }
export function ipDst(buf: Uint8Array, l3: number): number { return u32(buf, l3 + IP_DST); }
export function ipCsum(buf: Uint8Array, l3: number): number { return u16(buf, l3 + IP_CSUM); }
export function setIpSrc(buf: Uint8Array, l3: number, v: number): void { setU32(buf, l3 + IP_SRC, v); }
export function setIpDst(buf: Uint8Array, l3: number, v: number): void { setU32(buf, l3 + IP_DST, v); }
export function setIpCsum(buf: Uint8Array, l3: number, v: number): void { setU16(buf, l3 + IP_CSUM, v); }
/** True for any fragment: MF set or a non-zero fragment offset (RFC 791 §3.2). */
export function ipIsFragment(buf: Uint8Array, l3: number): boolean {
  return (u16(buf, l3 + IP_FLAGS_FRAG) & (IP_FLAG_MF | IP_FRAG_OFFSET_MASK)) !== 0;
}
/** True when the header checksum verifies (the sum over the header including the field is 0xffff). */
export function ipChecksumOk(buf: Uint8Array, l3: number, ihl: number): boolean {
  return fold(sum16(buf, l3, ihl)) === 0xffff;
}

// ---- parsed form ----

export interface Ipv4Repr {
  version: number; ihl: number; tos: number; totalLength: number; id: number;
  df: boolean; mf: boolean; fragOffset: number; ttl: number; protocol: number; checksum: number;
  checksumOk: boolean; src: string; dst: string; options: Uint8Array;
}

export type Ipv4ParseError = 'truncated' | 'bad_version' | 'bad_ihl' | 'bad_total_length';

/** Parse the IPv4 header at l3 given `avail` captured bytes from l3; returns an error name instead of throwing. */
export function parseIpv4Header(buf: Uint8Array, l3: number, avail: number): Ipv4Repr | Ipv4ParseError {
  if (avail < IP_MIN_HEADER_LEN) return 'truncated';
  if (ipVersion(buf, l3) !== 4) return 'bad_version';
  const ihl = ipHeaderLen(buf, l3);
  if (ihl < IP_MIN_HEADER_LEN) return 'bad_ihl';
  if (avail < ihl) return 'truncated';
  const total = ipTotalLen(buf, l3);
  if (total < ihl) return 'bad_total_length';
  const ff = u16(buf, l3 + IP_FLAGS_FRAG);
  return {
    version: 4, ihl, tos: buf[l3 + IP_TOS]!, totalLength: total, id: u16(buf, l3 + IP_ID),
    df: (ff & IP_FLAG_DF) !== 0, mf: (ff & IP_FLAG_MF) !== 0, fragOffset: (ff & IP_FRAG_OFFSET_MASK) * 8,
    ttl: ipTtl(buf, l3), protocol: ipProto(buf, l3), checksum: ipCsum(buf, l3),
    checksumOk: ipChecksumOk(buf, l3, ihl),
    src: formatIpv4(ipSrc(buf, l3)), dst: formatIpv4(ipDst(buf, l3)),
    options: Uint8Array.from(buf.subarray(l3 + IP_MIN_HEADER_LEN, l3 + ihl)),
  };
}

export interface Ipv4Emit {
  tos?: number; totalLength: number; id?: number; df?: boolean; mf?: boolean; fragOffset?: number;
  ttl?: number; protocol: number; src: string; dst: string; options?: Uint8Array;
}

/** Write an IPv4 header with a correct checksum; returns the header length. */
export function emitIpv4(r: Ipv4Emit, buf: Uint8Array, l3: number): number {
  const opts = r.options ?? new Uint8Array(0);
  if (opts.length % 4 !== 0 || opts.length > 40) throw new Error('ipv4: options must be a multiple of 4 bytes, at most 40');
  const src = parseIpv4(r.src), dst = parseIpv4(r.dst);
  if (src === null || dst === null) throw new Error('ipv4: bad address in repr');
  const ihl = IP_MIN_HEADER_LEN + opts.length;
  buf[l3] = 0x40 | (ihl >>> 2);
  buf[l3 + IP_TOS] = r.tos ?? 0;
  setU16(buf, l3 + IP_TOTAL_LEN, r.totalLength);
  setU16(buf, l3 + IP_ID, r.id ?? 0);
  setU16(buf, l3 + IP_FLAGS_FRAG, (r.df ? IP_FLAG_DF : 0) | (r.mf ? IP_FLAG_MF : 0) | (((r.fragOffset ?? 0) >>> 3) & IP_FRAG_OFFSET_MASK));
  buf[l3 + IP_TTL] = r.ttl ?? 64;
  buf[l3 + IP_PROTO] = r.protocol;
  setU16(buf, l3 + IP_CSUM, 0);
  setU32(buf, l3 + IP_SRC, src);
  setU32(buf, l3 + IP_DST, dst);
  buf.set(opts, l3 + IP_MIN_HEADER_LEN);
  setU16(buf, l3 + IP_CSUM, checksum(buf, l3, ihl));
  return ihl;
}
